//! Conversations exported by other tools, read into one shape that keeps their trees:
//! ChatGPT's data export (`conversations.json`: a `mapping` of nodes with parents and
//! children, `current_node` the branch on screen) and Open WebUI's chat export
//! (`chat.history.messages` with `parentId`, `currentId`). Messages that are not a user's
//! or an assistant's text (system prompts, tool calls, empty nodes) are left out, their
//! children re-attached to the nearest kept ancestor, so no branch is lost.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::chat::Sender;

/// Most conversations in one import.
pub const MAX_CONVERSATIONS: usize = 1000;
/// Most messages in one conversation.
pub const MAX_MESSAGES: usize = 10_000;

/// One message, parents before children.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedMessage {
    /// The source's id, unique within the conversation.
    pub key: String,
    pub parent_key: Option<String>,
    pub sender: Sender,
    pub content: String,
    /// RFC 3339.
    pub timestamp: String,
    pub model_name: Option<String>,
}

/// One conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedConversation {
    pub title: String,
    /// RFC 3339.
    pub created_at: String,
    pub messages: Vec<ImportedMessage>,
    /// The message the active branch ends at.
    pub active_key: Option<String>,
}

/// A record that cannot be imported: where (a JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ImportError {
    pub path: String,
    pub reason: String,
}

fn bad(path: impl Into<String>, reason: impl Into<String>) -> ImportError {
    ImportError {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Seconds since the epoch (ChatGPT and Open WebUI) as RFC 3339.
fn from_unix(v: &Value) -> Option<String> {
    let secs = v.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
    // Open WebUI writes seconds; some versions milliseconds.
    let secs = if secs > 1e11 { secs / 1000.0 } else { secs };
    let t = time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128).ok()?;
    Some(crate::time::format(t))
}

/// A node of either format, before ordering.
struct Node {
    key: String,
    parent: Option<String>,
    kept: Option<(Sender, String, Option<String>, Option<String>)>,
}

/// Orders kept nodes parents first, re-attaching children of dropped nodes to their
/// nearest kept ancestor; a cycle or a missing parent is an error at `path`.
fn order(
    nodes: Vec<Node>,
    active: Option<String>,
    created: &str,
    path: &str,
) -> Result<(Vec<ImportedMessage>, Option<String>), ImportError> {
    if nodes.len() > MAX_MESSAGES {
        return Err(bad(path, format!("more than {MAX_MESSAGES} messages")));
    }
    let by_key: HashMap<&str, &Node> = nodes.iter().map(|n| (n.key.as_str(), n)).collect();
    // The nearest kept ancestor of each node (walking up, bounded by the node count).
    let kept_ancestor = |start: Option<&str>| -> Result<Option<String>, ImportError> {
        let mut at = start;
        let mut steps = 0;
        while let Some(k) = at {
            let n = by_key
                .get(k)
                .ok_or_else(|| bad(format!("{path}.{k}"), "parent not in the conversation"))?;
            if n.kept.is_some() {
                return Ok(Some(k.to_string()));
            }
            at = n.parent.as_deref();
            steps += 1;
            if steps > nodes.len() {
                return Err(bad(format!("{path}.{k}"), "parents form a cycle"));
            }
        }
        Ok(None)
    };
    let mut children: HashMap<Option<String>, Vec<&Node>> = HashMap::new();
    for n in nodes.iter().filter(|n| n.kept.is_some()) {
        children
            .entry(kept_ancestor(n.parent.as_deref())?)
            .or_default()
            .push(n);
    }
    // Parents first; siblings in the order of their timestamps.
    let mut out = Vec::new();
    let mut queue = vec![None::<String>];
    let mut seen = HashSet::new();
    while let Some(parent) = queue.pop() {
        let mut kids = children.remove(&parent).unwrap_or_default();
        kids.sort_by(|a, b| {
            let ta = a
                .kept
                .as_ref()
                .and_then(|k| k.2.clone())
                .unwrap_or_default();
            let tb = b
                .kept
                .as_ref()
                .and_then(|k| k.2.clone())
                .unwrap_or_default();
            ta.cmp(&tb)
        });
        for n in kids.iter().rev() {
            queue.push(Some(n.key.clone()));
        }
        for n in kids {
            if !seen.insert(n.key.clone()) {
                return Err(bad(format!("{path}.{}", n.key), "appears twice"));
            }
            let (sender, content, ts, model) = n.kept.clone().expect("kept");
            out.push(ImportedMessage {
                key: n.key.clone(),
                parent_key: parent.clone(),
                sender,
                content,
                timestamp: ts.unwrap_or_else(|| created.to_string()),
                model_name: model,
            });
        }
    }
    // Depth-first pushes put a parent's later siblings after its descendants; that keeps
    // parents before children, which is all the store needs. Kept nodes never reached
    // from a root hang in a cycle.
    if let Some(n) = nodes
        .iter()
        .find(|n| n.kept.is_some() && !seen.contains(&n.key))
    {
        return Err(bad(format!("{path}.{}", n.key), "parents form a cycle"));
    }
    let active = match active {
        Some(a) if by_key.contains_key(a.as_str()) => kept_ancestor(Some(&a))?,
        _ => out.last().map(|m| m.key.clone()),
    };
    Ok((out, active))
}

fn title_of(v: &Value) -> String {
    let t = v.as_str().unwrap_or("").trim();
    let t: String = t.chars().filter(|c| !c.is_control()).take(200).collect();
    if t.trim().is_empty() {
        "Imported conversation".to_string()
    } else {
        t.trim().to_string()
    }
}

/// ChatGPT's `conversations.json` (an array of conversations).
pub fn chatgpt(doc: &Value) -> Result<Vec<ImportedConversation>, ImportError> {
    let convs = doc
        .as_array()
        .ok_or_else(|| bad("$", "expected the array of conversations.json"))?;
    if convs.len() > MAX_CONVERSATIONS {
        return Err(bad(
            "$",
            format!("more than {MAX_CONVERSATIONS} conversations"),
        ));
    }
    let mut out = Vec::new();
    for (i, c) in convs.iter().enumerate() {
        let path = format!("$[{i}]");
        let mapping = c["mapping"]
            .as_object()
            .ok_or_else(|| bad(format!("{path}.mapping"), "missing or not an object"))?;
        let created = from_unix(&c["create_time"]).unwrap_or_else(crate::time::now_string);
        let mut nodes = Vec::new();
        for (key, node) in mapping {
            let npath = format!("{path}.mapping.{key}");
            let parent = match &node["parent"] {
                Value::Null => None,
                Value::String(p) => Some(p.clone()),
                _ => return Err(bad(format!("{npath}.parent"), "must be a node id or null")),
            };
            let m = &node["message"];
            let kept = if m.is_object() {
                let sender = match m["author"]["role"].as_str() {
                    Some("user") => Some(Sender::User),
                    Some("assistant") => Some(Sender::Llm),
                    Some(_) => None,
                    None => return Err(bad(format!("{npath}.message.author.role"), "missing")),
                };
                let text = match m["content"]["content_type"].as_str() {
                    Some("text") => m["content"]["parts"]
                        .as_array()
                        .ok_or_else(|| bad(format!("{npath}.message.content.parts"), "missing"))?
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                let model = m["metadata"]["model_slug"].as_str().map(str::to_string);
                sender
                    .filter(|_| !text.trim().is_empty())
                    .map(|s| (s, text, from_unix(&m["create_time"]), model))
            } else {
                None
            };
            nodes.push(Node {
                key: key.clone(),
                parent,
                kept,
            });
        }
        let active = c["current_node"].as_str().map(str::to_string);
        let (messages, active_key) = order(nodes, active, &created, &format!("{path}.mapping"))?;
        out.push(ImportedConversation {
            title: title_of(&c["title"]),
            created_at: created,
            messages,
            active_key,
        });
    }
    Ok(out)
}

/// Open WebUI's chat export: an array of chats (or one), each `{title, chat: {history:
/// {messages, currentId}}}` (or the `chat` object itself).
pub fn open_webui(doc: &Value) -> Result<Vec<ImportedConversation>, ImportError> {
    let items: Vec<&Value> = match doc {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![doc],
        _ => return Err(bad("$", "expected a chat or an array of chats")),
    };
    if items.len() > MAX_CONVERSATIONS {
        return Err(bad(
            "$",
            format!("more than {MAX_CONVERSATIONS} conversations"),
        ));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = if doc.is_array() {
            format!("$[{i}]")
        } else {
            "$".to_string()
        };
        let (chat, chat_path) = if item["chat"].is_object() {
            (&item["chat"], format!("{path}.chat"))
        } else {
            (*item, path.clone())
        };
        let messages = chat["history"]["messages"].as_object().ok_or_else(|| {
            bad(
                format!("{chat_path}.history.messages"),
                "missing or not an object",
            )
        })?;
        let created = from_unix(&item["created_at"])
            .or_else(|| from_unix(&chat["timestamp"]))
            .unwrap_or_else(crate::time::now_string);
        let mut nodes = Vec::new();
        for (key, m) in messages {
            let mpath = format!("{chat_path}.history.messages.{key}");
            let parent = match &m["parentId"] {
                Value::Null => None,
                Value::String(p) => Some(p.clone()),
                _ => {
                    return Err(bad(
                        format!("{mpath}.parentId"),
                        "must be a message id or null",
                    ));
                }
            };
            let sender = match m["role"].as_str() {
                Some("user") => Some(Sender::User),
                Some("assistant") => Some(Sender::Llm),
                Some(_) => None,
                None => return Err(bad(format!("{mpath}.role"), "missing")),
            };
            let content = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                _ => return Err(bad(format!("{mpath}.content"), "must be text")),
            };
            let model = m["model"].as_str().map(str::to_string);
            let kept = sender
                .filter(|_| !content.trim().is_empty())
                .map(|s| (s, content, from_unix(&m["timestamp"]), model));
            nodes.push(Node {
                key: key.clone(),
                parent,
                kept,
            });
        }
        let active = chat["history"]["currentId"].as_str().map(str::to_string);
        let (messages, active_key) = order(
            nodes,
            active,
            &created,
            &format!("{chat_path}.history.messages"),
        )?;
        out.push(ImportedConversation {
            title: title_of(if item["title"].is_string() {
                &item["title"]
            } else {
                &chat["title"]
            }),
            created_at: created,
            messages,
            active_key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chatgpt_tree_with_a_system_root_and_an_edit() {
        // A hidden root, a system message, an edited first question (the same file the
        // black-box import test sends).
        let doc: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/chatgpt-branches.json"
        ))
        .unwrap();
        let convs = chatgpt(&doc).unwrap();
        let c = &convs[0];
        assert_eq!(c.title, "Trip");
        let shape: Vec<(&str, Option<&str>)> = c
            .messages
            .iter()
            .map(|m| (m.key.as_str(), m.parent_key.as_deref()))
            .collect();
        // Parents first, siblings by time; system and empty nodes are left out.
        assert_eq!(
            shape,
            vec![
                ("u1", None),
                ("u1b", None),
                ("a1", Some("u1")),
                ("a2", Some("u1b"))
            ]
        );
        assert_eq!(c.messages[2].model_name.as_deref(), Some("gpt-4o"));
        assert_eq!(c.active_key.as_deref(), Some("a2"));
    }

    #[test]
    fn errors_name_the_first_bad_record() {
        let doc = json!([{"title": "x", "mapping": {}}, {"title": "y"}]);
        assert_eq!(chatgpt(&doc).unwrap_err().path, "$[1].mapping");
        let doc = json!({"chat": {"history": {"messages": {
            "m1": {"id": "m1", "parentId": "nope", "role": "user", "content": "hi"}}}}});
        assert_eq!(
            open_webui(&doc).unwrap_err().path,
            "$.chat.history.messages.nope"
        );
        let cyc = json!({"history": {"messages": {
            "a": {"parentId": "b", "role": "user", "content": "x"},
            "b": {"parentId": "a", "role": "assistant", "content": "y"}}}});
        assert!(open_webui(&cyc).unwrap_err().reason.contains("cycle"));
    }
}
