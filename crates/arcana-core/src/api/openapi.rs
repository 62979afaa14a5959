//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations. A test checks that every route of every component appears in it.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, auth, chat, embedding_model, gateway, imports, llm, llm_calls, reply_streams, semantic,
    status, system, terminal_doc, tokens, turns,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Arcana API", description = "Chat, context memory, LLM configuration, auth and status for the Arcana Dashboard."),
    paths(
        auth::register, auth::login, auth::me, tokens::create, tokens::list, tokens::revoke,
        admin::list_users, admin::create_user, admin::get_user, admin::update_user, admin::delete_user,
        system::health, system::openapi_json, status::status, status::metrics,
        llm::list_providers, llm::create_provider, llm::update_provider, llm::delete_provider,
        llm::list_models, llm::create_model, llm::update_model, llm::delete_model,
        llm::get_access, llm::put_access, llm::get_preferences, llm::put_preferences,
        llm::list_rules, llm::create_rule, llm::get_rule, llm::update_rule, llm::delete_rule,
        llm::explain, llm::rotate_keys, embedding_model::get, embedding_model::put,
        llm_calls::complete, llm_calls::usage, llm_calls::put_budget,
        gateway::chat_completions, gateway::models, gateway::embeddings,
        chat::send, chat::list_conversations, chat::create_conversation, chat::rename_conversation,
        chat::delete_conversation, chat::export, chat::import, chat::history, chat::clear, chat::search,
        chat::list_memories, chat::put_memory, chat::get_memory, chat::delete_memory,
        semantic::search_memories,
        reply_streams::follow, reply_streams::cancel, turns::regenerate, turns::edit,
        turns::set_active_leaf, turns::delete_message, imports::chatgpt, imports::open_webui,
        terminal_doc::shell, terminal_doc::sessions, terminal_doc::history, terminal_doc::close,
        terminal_doc::recording, terminal_doc::ticket, terminal_doc::health,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "admin"), (name = "system"), (name = "llm"), (name = "chat"), (name = "memory"),
        (name = "gateway", description = "OpenAI-compatible: point OpenAI clients at `/v1` with a personal access token. Errors are OpenAI's `{\"error\": {...}}`."),
        (name = "terminal", description = "Served by terminal-host, the native sidecar (same origin under `arcana up`).")),
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

/// The document as JSON text, with the error conventions every endpoint shares applied
/// (see [`problem_responses`]).
pub fn document_json() -> String {
    let mut doc = serde_json::to_value(document()).expect("OpenAPI document serializes");
    problem_responses(&mut doc);
    doc.to_string()
}

/// Errors are `application/problem+json` bodies of the `Problem` schema, whatever the
/// status: the responses that name `Problem` get that media type, and every operation
/// gets a `default` response saying so, so each error a client can meet is documented.
fn problem_responses(doc: &mut serde_json::Value) {
    let problem = serde_json::json!({
        "description": "An error (RFC 9457): a stable `code`, a `detail`, the `request_id`.",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    let openai_error = serde_json::json!({
        "description": "An error in OpenAI's shape.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAiErrorBody"}}}
    });
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        // The gateway answers errors as OpenAI does, not as problem documents.
        if path.starts_with("/v1/") {
            for op in item.values_mut() {
                if let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) {
                    responses
                        .entry("default")
                        .or_insert_with(|| openai_error.clone());
                }
            }
            continue;
        }
        for op in item.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                if is_error && response.get("content").is_none() {
                    response["content"] = problem["content"].clone();
                }
                let Some(content) = response.get_mut("content").and_then(|c| c.as_object_mut())
                else {
                    continue;
                };
                let names_problem = content
                    .get("application/json")
                    .is_some_and(|c| c["schema"]["$ref"] == "#/components/schemas/Problem");
                if names_problem && let Some(c) = content.remove("application/json") {
                    content.insert("application/problem+json".into(), c);
                }
            }
            responses
                .entry("default")
                .or_insert_with(|| problem.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The web console's typed client is generated from `console/openapi.json` at build
    /// time, so that snapshot must be this document: a changed API fails here until the
    /// snapshot is refreshed, and then the console's type check fails wherever the
    /// console no longer fits. `ARCANA_UPDATE_OPENAPI=1` rewrites the snapshot.
    #[test]
    fn the_console_client_is_generated_from_this_document() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../console/openapi.json");
        let served: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        if std::env::var_os("ARCANA_UPDATE_OPENAPI").is_some() {
            let text = serde_json::to_string_pretty(&served).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
        }
        let snapshot: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            snapshot == served,
            "console/openapi.json is stale: run `ARCANA_UPDATE_OPENAPI=1 cargo test -p arcana-core \
             the_console_client` and rebuild the console (`npm --prefix console run build`)"
        );
    }

    /// Generated clients name their functions and types after operation ids.
    #[test]
    fn operation_ids_are_unique() {
        let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if let Some(id) = op["operationId"].as_str() {
                    let again = seen.insert(id.to_string(), format!("{method} {path}"));
                    assert!(again.is_none(), "{id}: {again:?} and {method} {path}");
                }
            }
        }
    }

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
        for (method, path) in crate::terminal::ROUTES {
            if doc["paths"][*path][method.to_ascii_lowercase()].is_null() {
                missing.push(format!("{method} {path} (terminal-host)"));
            }
        }
        assert!(
            missing.is_empty(),
            "routes missing from OpenAPI: {missing:?}"
        );
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    fn schemas() -> serde_json::Value {
        let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        doc["components"]["schemas"].clone()
    }

    #[test]
    fn user_roles_and_message_roles_are_distinct_schemas() {
        let s = schemas();
        assert_eq!(s["UserRole"]["enum"], serde_json::json!(["admin", "user"]));
        assert_eq!(
            s["MessageRole"]["enum"],
            serde_json::json!(["system", "user", "assistant"])
        );
        assert!(s.get("Role").is_none(), "an ambiguous Role schema is left");
        for (schema, field) in [
            ("User", "role"),
            ("CreateUserRequest", "role"),
            ("UpdateUserRequest", "role"),
        ] {
            let text = s[schema]["properties"][field].to_string();
            assert!(text.contains("UserRole"), "{schema}.{field}: {text}");
        }
        assert!(
            s["Message"]["properties"]["role"]
                .to_string()
                .contains("MessageRole")
        );
    }

    #[test]
    fn reply_options_fields_are_the_ones_bodies_accept() {
        let s = schemas();
        let mut documented: Vec<String> = s["ReplyOptions"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        documented.sort();
        let mut accepted: Vec<String> = crate::api::turns::ReplyOptions::FIELDS
            .iter()
            .map(|f| f.to_string())
            .collect();
        accepted.sort();
        assert_eq!(documented, accepted);
        // The bodies that flatten the options document them too.
        for body in ["ChatRequest", "EditRequest"] {
            assert!(
                s[body].to_string().contains("ReplyOptions")
                    || s[body].to_string().contains("use_memory"),
                "{body}: {}",
                s[body]
            );
        }
    }

    #[test]
    fn flattened_bodies_refuse_unknown_fields_and_read_the_options() {
        use crate::http::ApiRequest;
        let known = crate::api::turns::ReplyOptions::fields_with(&["message"]);
        let req = |v: serde_json::Value| ApiRequest::new("POST", "/api/chat").json_body(&v);
        let body: crate::api::chat::ChatRequest = req(serde_json::json!(
            {"message": "hi", "model": "m", "tags": ["code"], "stream": true, "use_memory": false}))
        .json_with_fields(&known)
        .unwrap();
        assert_eq!(body.options.model.as_deref(), Some("m"));
        assert_eq!(body.options.tags, ["code"]);
        assert!(body.options.stream && !body.options.use_memory);
        let defaults: crate::api::chat::ChatRequest = req(serde_json::json!({"message": "hi"}))
            .json_with_fields(&known)
            .unwrap();
        assert!(defaults.options.use_memory && !defaults.options.stream);
        let e = req(serde_json::json!({"message": "hi", "modle": "m"}))
            .json_with_fields::<crate::api::chat::ChatRequest>(&known)
            .unwrap_err();
        assert_eq!((e.status, e.errors[0].field.as_str()), (422, "modle"));
    }

    #[test]
    fn memory_values_are_any_json() {
        let s = schemas();
        for schema in ["MemoryInput", "Memory"] {
            let value = &s[schema]["properties"]["value"];
            assert!(
                value.get("type").is_none(),
                "{schema}.value is typed: {value}"
            );
        }
    }
}
