//! The model catalog behind `GET /sdk/models/{id}` (the SDK's `ModelFactory.get`): a handful of
//! models with ids shaped like aiXplain's (24 hex digits) and the `supplier/model/host` paths the v2
//! SDK resolves to ids. The names are illustrative; tests add their own with
//! [`super::AixplainSim::add_model`].

use serde::Serialize;

/// One model of the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CatalogModel {
    /// The id key limits name (`assetId`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The path the v2 SDK accepts in place of the id.
    pub path: String,
}

impl CatalogModel {
    /// A model with `id`, `name` and `path`.
    pub fn new(id: &str, name: &str, path: &str) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            path: path.into(),
        }
    }

    /// Whether a request for `wanted` (an id, or a path the SDK sends with `/` as `%2F`) means it.
    pub fn answers_to(&self, wanted: &str) -> bool {
        self.id == wanted || self.path == wanted
    }
}

/// The models every simulated team starts with.
pub fn builtin() -> Vec<CatalogModel> {
    vec![
        CatalogModel::new("6646261c6eb563165658bbb1", "GPT-4o", "openai/gpt-4o/openai"),
        CatalogModel::new(
            "669a63646eb56306647e1091",
            "GPT-4o Mini",
            "openai/gpt-4o-mini/openai",
        ),
        CatalogModel::new(
            "67be216bd8f6a65d6f74d5e9",
            "Claude 3.7 Sonnet",
            "anthropic/claude-3-7-sonnet/anthropic",
        ),
        CatalogModel::new("6414bd3cd09663e9225130e8", "Llama 3 8B", "meta/llama-3-8b/groq"),
    ]
}
