//! Spin component `llm`: providers, models, allowlists, preferences, routing rules,
//! the routing explanation and key rotation.
//! Routing and logic live in `arcana_core::api::llm`; this crate only binds them to Spin.

// `#[http_component]` generates the component's export glue, which needs `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    arcana_spin::serve(arcana_core::api::llm::ROUTES, req, out).await;
}
