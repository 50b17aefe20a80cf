//! One authenticated call to OpenAI's Administration API.

use reqwest::{Method, Url};

use crate::{
    Result, SecretValue,
    http::{Call, Response, Transport},
};

pub(super) async fn send(
    transport: &Transport,
    call: Call,
    method: Method,
    url: Url,
    body: Option<serde_json::Value>,
    credential: &SecretValue,
) -> Result<Response> {
    transport
        .send(call, |client| {
            let request = client
                .request(method.clone(), url.clone())
                .bearer_auth(credential.expose());
            match &body {
                Some(body) => request.json(body),
                None => request,
            }
        })
        .await
}
