//! Conversation titles written by a model: after the first reply of a new conversation,
//! a short title is asked for through routing with the tag `title` (so an admin can send
//! it to a cheap model; its usage is in the ledger like any call). A conversation the
//! user renamed meanwhile keeps its name; any failure keeps the first-line title.

use super::Ctx;
use crate::auth::AuthUser;
use crate::chat;
use crate::llm::client::{Message, Role};

/// The routing tag of title requests.
pub const TITLE_TAG: &str = "title";
/// Longest title kept, in characters.
const MAX_TITLE: usize = 80;
/// How much of the first turn the model sees, in characters each.
const EXCERPT: usize = 1000;

const INSTRUCTION: &str = "Write a title of at most six words for the conversation below. \
    Answer with the title only, without quotes or punctuation at the end.";

/// A model's answer made into a title: its first line, without quotes, bounded.
fn clean(answer: &str) -> Option<String> {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_matches(|c: char| c == '"' || c == '\'' || c == '“' || c == '”');
    let title: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TITLE)
        .collect();
    let title = title
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .trim()
        .to_string();
    (!title.is_empty()).then_some(title)
}

/// Retitles conversation `conversation_id` from its first turn, unless its title is no
/// longer `first_title` (the user renamed it). Never fails the request: failures are
/// logged and the title stays.
pub fn retitle(
    ctx: &Ctx<'_>,
    caller: &AuthUser,
    conversation_id: &str,
    first_title: &str,
    question: &str,
    answer: &str,
) {
    if !ctx.settings.generate_titles {
        return;
    }
    let excerpt = |s: &str| s.chars().take(EXCERPT).collect::<String>();
    let turn = format!(
        "User: {}\n\nAssistant: {}",
        excerpt(question),
        excerpt(answer)
    );
    let decision =
        match super::llm::decide_for(ctx, caller, &turn, None, &[TITLE_TAG.to_string()], None) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(conversation_id, code = %e.code, "no model for a title");
                return;
            }
        };
    let messages = [
        Message {
            role: Role::System,
            content: INSTRUCTION.into(),
        },
        Message {
            role: Role::User,
            content: turn,
        },
    ];
    let outcome = super::llm_calls::call_models(
        ctx,
        caller,
        &decision,
        &messages,
        (Some(0.2), None, Some(24)),
        false,
        &mut |_| std::ops::ControlFlow::Continue(()),
    );
    let title = match outcome.map(|o| clean(&o.completion.content)) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(conversation_id, code = %e.code, "title not generated");
            return;
        }
    };
    match chat::retitle_unless_renamed(ctx.db, caller.id(), conversation_id, first_title, &title) {
        Ok(true) => tracing::info!(conversation_id, "conversation titled"),
        Ok(false) => {}
        Err(e) => tracing::warn!(conversation_id, error = %e, "title not stored"),
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn answers_become_short_plain_titles() {
        assert_eq!(
            clean("\n \"Soup recipes.\"\nmore").as_deref(),
            Some("Soup recipes")
        );
        assert_eq!(clean("   ").as_deref(), None);
        assert_eq!(clean(&"x".repeat(200)).map(|t| t.chars().count()), Some(80));
    }
}
