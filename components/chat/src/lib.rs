//! Spin component `chat`: conversations, history, `POST /api/chat` (plain and
//! streamed), search, export/import and context memory.
//! Routing and logic live in `arcana_core::api::chat`; this crate only binds them to Spin.

// `#[http_component]` generates the component's export glue, which needs `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    arcana_spin::serve(arcana_core::api::chat::ROUTES, req, out).await;
}
