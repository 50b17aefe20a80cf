//! Projects, service accounts and project keys, with cursor pagination.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn projects_are_created_read_renamed_archived_and_listed_with_unix_timestamps() {
    let router = sim().router();
    let created = admin(
        &router,
        "POST",
        "/organization/projects",
        Some(json!({"name": "Team B"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("proj_"));
    assert_eq!(created.body["object"], "organization.project");
    assert!(created.body["created_at"].is_i64());
    assert_eq!(created.body["status"], "active");

    let renamed = admin(
        &router,
        "POST",
        &format!("/organization/projects/{id}"),
        Some(json!({"name": "Team C"})),
    )
    .await;
    assert_eq!(renamed.body["name"], "Team C");
    let archived = admin(
        &router,
        "POST",
        &format!("/organization/projects/{id}/archive"),
        None,
    )
    .await;
    assert_eq!(archived.body["status"], "archived");
    assert!(archived.body["archived_at"].is_i64());
    let refused = admin(
        &router,
        "POST",
        &format!("/organization/projects/{id}"),
        Some(json!({"name": "x"})),
    )
    .await;
    error_of(&refused, StatusCode::BAD_REQUEST);

    let active = admin(&router, "GET", "/organization/projects", None).await;
    assert_eq!(active.body["data"].as_array().unwrap().len(), 1);
    let all = admin(
        &router,
        "GET",
        "/organization/projects?include_archived=true",
        None,
    )
    .await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(all.body["object"], "list");
}

#[tokio::test]
async fn an_unknown_project_gets_a_wrapped_404() {
    let router = sim().router();
    let reply = admin(
        &router,
        "GET",
        "/organization/projects/proj_nope/service_accounts",
        None,
    )
    .await;
    let (message, kind, _, _) = error_of(&reply, StatusCode::NOT_FOUND);
    assert_eq!(message, "The project proj_nope was not found");
    assert_eq!(kind, "invalid_request_error");
}

#[tokio::test]
async fn creating_a_service_account_reveals_its_key_once_and_stores_only_a_hash() {
    let sim = sim();
    let router = sim.router();
    let reply = admin(
        &router,
        "POST",
        &project_path("/service_accounts"),
        Some(json!({"name": "bot [ks:u/1]"})),
    )
    .await;
    assert_eq!(reply.body["object"], "organization.project.service_account");
    assert_eq!(reply.body["role"], "member");
    assert_eq!(reply.body["name"], "bot [ks:u/1]");
    let key = &reply.body["api_key"];
    assert_eq!(key["object"], "organization.project.service_account.api_key");
    let value = key["value"].as_str().unwrap().to_owned();
    assert!(value.starts_with("sk-svcacct-") && value.len() == 11 + 64);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let key_id = key["id"].as_str().unwrap().to_owned();

    let got = admin(
        &router,
        "GET",
        &project_path(&format!("/service_accounts/{id}")),
        None,
    )
    .await;
    assert!(got.body.get("api_key").is_none());
    let listed = admin(&router, "GET", &project_path("/service_accounts"), None).await;
    let project_key = admin(
        &router,
        "GET",
        &project_path(&format!("/api_keys/{key_id}")),
        None,
    )
    .await;
    assert_eq!(project_key.body["owner"]["service_account"]["id"], json!(id));
    assert_eq!(
        project_key.body["redacted_value"],
        json!(format!(
            "sk-svcacct-{}...{}",
            &value[11..14],
            &value[value.len() - 3..]
        ))
    );
    let keys = admin(&router, "GET", &project_path("/api_keys"), None).await;
    let hooks = send(&router, "GET", "/_sim/projects", None, None).await;
    let log = send(&router, "GET", "/_sim/requests", None, None).await;
    for body in [
        &got.body,
        &listed.body,
        &project_key.body,
        &keys.body,
        &hooks.body,
        &log.body,
    ] {
        assert!(!body.to_string().contains(&value), "the value leaked into {body}");
    }
    assert!(!format!("{:?}", sim.projects()).contains(&value));
}

#[tokio::test]
async fn a_service_account_without_a_key_has_role_none() {
    let router = sim().router();
    let reply = admin(
        &router,
        "POST",
        &project_path("/service_accounts"),
        Some(json!({"name": "bare", "create_service_account_only": true})),
    )
    .await;
    assert_eq!(reply.body["role"], "none");
    assert_eq!(reply.body["api_key"], Value::Null);
}

#[tokio::test]
async fn service_accounts_are_renamed_in_place_and_validated() {
    let router = sim().router();
    let (id, _, _) = create_account(&router, "before").await;
    let path = project_path(&format!("/service_accounts/{id}"));
    let renamed = admin(&router, "POST", &path, Some(json!({"name": "after"}))).await;
    assert_eq!(
        (renamed.body["id"].clone(), renamed.body["name"].clone()),
        (json!(id), json!("after"))
    );
    assert_eq!(admin(&router, "GET", &path, None).await.body["name"], "after");
    let bad = admin(&router, "POST", &path, Some(json!({"name": 5}))).await;
    let (_, _, param, _) = error_of(&bad, StatusCode::BAD_REQUEST);
    assert_eq!(param, json!("name"));
    let unknown = admin(&router, "POST", &path, Some(json!({"disabled": true}))).await;
    error_of(&unknown, StatusCode::BAD_REQUEST);
    let missing = admin(
        &router,
        "POST",
        &project_path("/service_accounts/svc_acct_nope"),
        Some(json!({"name": "x"})),
    )
    .await;
    error_of(&missing, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_service_account_revokes_its_key_and_a_second_delete_is_404() {
    let sim = sim();
    let router = sim.router();
    let (id, key, _) = create_account(&router, "doomed").await;
    let path = project_path(&format!("/service_accounts/{id}"));
    let deleted = admin(&router, "DELETE", &path, None).await;
    assert_eq!(
        deleted.body,
        json!({"object": "organization.project.service_account.deleted", "id": id, "deleted": true})
    );
    error_of(
        &admin(&router, "DELETE", &path, None).await,
        StatusCode::NOT_FOUND,
    );
    error_of(&admin(&router, "GET", &path, None).await, StatusCode::NOT_FOUND);
    error_of(
        &admin(&router, "GET", &project_path(&format!("/api_keys/{key}")), None).await,
        StatusCode::NOT_FOUND,
    );
    let account = sim.service_account(DEFAULT_PROJECT_ID, &id).unwrap();
    assert!(account.deleted && account.key_id.as_deref() == Some(key.as_str()));
}

#[tokio::test]
async fn a_service_account_key_cannot_be_deleted_on_its_own_but_a_user_key_can() {
    let sim = sim();
    let router = sim.router();
    let (_, key, _) = create_account(&router, "bot").await;
    let refused = admin(
        &router,
        "DELETE",
        &project_path(&format!("/api_keys/{key}")),
        None,
    )
    .await;
    let (message, ..) = error_of(&refused, StatusCode::BAD_REQUEST);
    assert!(message.contains("service account"), "{message}");

    let user_key = sim
        .add_user_key(DEFAULT_PROJECT_ID, "sk-proj-abcdefghijkl", "mine")
        .unwrap();
    let deleted = admin(
        &router,
        "DELETE",
        &project_path(&format!("/api_keys/{user_key}")),
        None,
    )
    .await;
    assert_eq!(deleted.body["object"], "organization.project.api_key.deleted");
    error_of(
        &admin(
            &router,
            "DELETE",
            &project_path(&format!("/api_keys/{user_key}")),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn service_account_calls_on_an_archived_project_get_400() {
    let sim = sim();
    let router = sim.router();
    let (id, _, _) = create_account(&router, "bot").await;
    assert!(sim.archive_project(DEFAULT_PROJECT_ID));
    for (method, path, body) in [
        ("GET", project_path("/service_accounts"), None),
        (
            "POST",
            project_path("/service_accounts"),
            Some(json!({"name": "x"})),
        ),
        ("GET", project_path(&format!("/service_accounts/{id}")), None),
        ("DELETE", project_path(&format!("/service_accounts/{id}")), None),
    ] {
        error_of(
            &admin(&router, method, &path, body).await,
            StatusCode::BAD_REQUEST,
        );
    }
}

#[tokio::test]
async fn lists_page_with_after_and_report_first_and_last_ids_skipping_deleted_objects() {
    let router = sim().router();
    let mut ids = Vec::new();
    for n in 0..45 {
        ids.push(create_account(&router, &format!("bot-{n}")).await.0);
    }
    // A deleted account still anchors a cursor that points at it.
    admin(
        &router,
        "DELETE",
        &project_path(&format!("/service_accounts/{}", ids[19])),
        None,
    )
    .await;

    let first = admin(&router, "GET", &project_path("/service_accounts"), None).await;
    let data = first.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 20);
    assert_eq!(first.body["first_id"], json!(ids[0]));
    assert_eq!(first.body["last_id"], json!(ids[20]));
    assert_eq!(first.body["has_more"], json!(true));

    let after = admin(
        &router,
        "GET",
        &project_path(&format!("/service_accounts?limit=100&after={}", ids[19])),
        None,
    )
    .await;
    assert_eq!(after.body["data"].as_array().unwrap().len(), 25);
    assert_eq!(after.body["has_more"], json!(false));
    let last = admin(
        &router,
        "GET",
        &project_path(&format!("/service_accounts?after={}", ids[44])),
        None,
    )
    .await;
    assert_eq!(last.body["data"], json!([]));
    assert_eq!(
        (last.body["first_id"].clone(), last.body["has_more"].clone()),
        (Value::Null, json!(false))
    );

    for bad in ["limit=0", "limit=101", "limit=x", "after=svc_acct_unknown"] {
        let reply = admin(
            &router,
            "GET",
            &project_path(&format!("/service_accounts?{bad}")),
            None,
        )
        .await;
        error_of(&reply, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn project_keys_list_their_owner_and_filter_by_owner_access() {
    let router = sim().router();
    let (id, key, _) = create_account(&router, "bot").await;
    let keys = admin(
        &router,
        "GET",
        &project_path("/api_keys?owner_project_access=any"),
        None,
    )
    .await;
    let listed = &keys.body["data"][0];
    assert_eq!(listed["id"], json!(key));
    assert_eq!(listed["owner"]["type"], "service_account");
    assert_eq!(listed["owner"]["service_account"]["id"], json!(id));
    assert_eq!(listed["owner_project_access"], "active");
    assert_eq!(listed["last_used_at"], Value::Null);
    let inactive = admin(
        &router,
        "GET",
        &project_path("/api_keys?owner_project_access=inactive"),
        None,
    )
    .await;
    assert_eq!(inactive.body["data"], json!([]));
    let bad = admin(
        &router,
        "GET",
        &project_path("/api_keys?owner_project_access=some"),
        None,
    )
    .await;
    error_of(&bad, StatusCode::BAD_REQUEST);
}
