//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations. A test checks that every route of every component appears in it.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, auth, chat, llm, llm_calls, status, system};

#[derive(OpenApi)]
#[openapi(
    info(title = "Arcana API", description = "Chat, context memory, LLM configuration, auth and status for the Arcana Dashboard."),
    paths(
        auth::register, auth::login, auth::me,
        admin::list_users, admin::create_user, admin::get_user, admin::update_user, admin::delete_user,
        system::health, system::openapi_json, status::status, status::metrics,
        llm::list_providers, llm::create_provider, llm::update_provider, llm::delete_provider,
        llm::list_models, llm::create_model, llm::update_model, llm::delete_model,
        llm::get_access, llm::put_access, llm::get_preferences, llm::put_preferences,
        llm::list_rules, llm::create_rule, llm::get_rule, llm::update_rule, llm::delete_rule,
        llm::explain, llm::rotate_keys,
        llm_calls::complete, llm_calls::usage, llm_calls::put_budget,
        chat::send, chat::list_conversations, chat::create_conversation, chat::rename_conversation,
        chat::delete_conversation, chat::export, chat::import, chat::history, chat::clear, chat::search,
        chat::list_memories, chat::put_memory, chat::get_memory, chat::delete_memory,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "admin"), (name = "system"), (name = "llm"), (name = "chat"), (name = "memory")),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::VERSION.to_string();
    doc
}

/// The document as JSON text.
pub fn document_json() -> String {
    document().to_json().expect("OpenAPI document serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_method() {
        let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut missing = Vec::new();
        for r in crate::api::all_routes() {
            let method = r.method.to_ascii_lowercase();
            if doc["paths"][r.path][&method].is_null() {
                missing.push(format!("{} {}", r.method, r.path));
            }
        }
        assert!(
            missing.is_empty(),
            "routes missing from OpenAPI: {missing:?}"
        );
    }
}
