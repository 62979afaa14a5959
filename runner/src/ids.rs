//! Spin's identifier rules, so that the runner accepts exactly the names `spin up` accepts
//! and refuses the others with Spin's own words.
//!
//! An identifier is one or more *words* joined by a separator (`-` for component ids,
//! `_` for variable names). Each word starts with an ASCII letter, continues with ASCII
//! letters and digits, and is written in one case (its first letter decides which).
//! Variable names must also be all lower case. Database and key-value labels may be
//! either form. So `llm_host_1` is refused (the word `1` starts with a digit) while
//! `llm_host1` is fine.

use serde::Deserialize;

/// Which identifier family a name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `-`-separated, each word in one case (component ids).
    Kebab,
    /// `_`-separated, each word in one case.
    Snake,
    /// `_`-separated and lower case only (variable names).
    LowerSnake,
}

impl Style {
    fn separator(self) -> char {
        match self {
            Style::Kebab => '-',
            Style::Snake | Style::LowerSnake => '_',
        }
    }

    fn other_separator(self) -> char {
        match self {
            Style::Kebab => '_',
            Style::Snake | Style::LowerSnake => '-',
        }
    }
}

/// Checks `id` against a style; the error is the sentence Spin prints.
fn check(id: &str, style: Style) -> Result<(), String> {
    let sep = style.separator();
    if id.is_empty() {
        return Err("empty".into());
    }
    let wrong = style.other_separator();
    if id.contains(wrong) {
        return Err(format!(
            "words must be separated with {sep:?}, not {wrong:?}"
        ));
    }
    for word in id.split(sep) {
        let Some(first) = word.chars().next() else {
            return Err(format!("{sep:?}-separated words must not be empty"));
        };
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "{sep:?}-separated words must start with an ASCII letter; got {first:?}"
            ));
        }
        let upper = first.is_ascii_uppercase();
        for c in word.chars().skip(1) {
            if c.is_ascii_digit() {
                continue;
            }
            if !c.is_ascii_alphanumeric() {
                return Err(format!(
                    "{sep:?}-separated words may only contain alphanumeric ASCII; got {c:?}"
                ));
            }
            if c.is_ascii_uppercase() != upper {
                return Err(format!(
                    "{sep:?}-separated words must be all lowercase or all UPPERCASE; got {word:?}"
                ));
            }
        }
        if style == Style::LowerSnake && upper {
            return Err(format!(
                "Lower-case identifiers must be all lowercase; got {id:?}"
            ));
        }
    }
    Ok(())
}

/// Checks a component id (`[component.<id>]`, a trigger's `component`).
pub fn check_component_id(id: &str) -> Result<(), String> {
    check(id, Style::Kebab)
}

/// Checks a variable name (application `[variables]` and component `variables` keys).
pub fn check_variable_name(name: &str) -> Result<(), String> {
    check(name, Style::LowerSnake)
}

/// Checks a store label (`sqlite_databases`, `key_value_stores` entries): either form.
pub fn check_label(label: &str) -> Result<(), String> {
    if check(label, Style::Kebab).is_ok() || check(label, Style::Snake).is_ok() {
        Ok(())
    } else {
        Err("expected kebab-case or snake_case".into())
    }
}

/// Checks a name a guest passes to `variables::get` at run time, as Spin's variable
/// resolver does (its rules differ slightly from the manifest's: `a_1` passes here).
pub fn check_runtime_key(key: &str) -> Result<(), String> {
    let reason = if key.is_empty() {
        Some("must not be empty".to_string())
    } else if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Some(format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ))
    } else if !key.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("must start with a lowercase ASCII letter".into())
    } else if !key.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("must end with a lowercase ASCII letter or digit".into())
    } else if key.contains("__") {
        Some("must not contain multiple consecutive underscores".into())
    } else {
        None
    };
    match reason {
        Some(r) => Err(format!("invalid variable name: {key:?}: {r}")),
        None => Ok(()),
    }
}

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $check(&s).map(|()| $name(s))
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A component id, checked while the manifest is parsed (so errors carry its line).
    ComponentId,
    check_component_id
);
checked_string!(
    /// A variable name, checked while the manifest is parsed.
    VariableName,
    check_variable_name
);
checked_string!(
    /// A database or key-value store label, checked while the manifest is parsed.
    Label,
    check_label
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids_follow_spins_word_rules() {
        for ok in ["auth", "my-comp", "MY-COMP", "my-COMP", "a1-b2", "v2"] {
            assert_eq!(check_component_id(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("bad_id", "words must be separated with '-', not '_'"),
            (
                "1-2-3",
                "'-'-separated words must start with an ASCII letter; got '1'",
            ),
            ("a--b", "'-'-separated words must not be empty"),
            ("-a", "'-'-separated words must not be empty"),
            ("a-", "'-'-separated words must not be empty"),
            (
                "Foo",
                "'-'-separated words must be all lowercase or all UPPERCASE; got \"Foo\"",
            ),
            (
                "a+b",
                "'-'-separated words may only contain alphanumeric ASCII; got '+'",
            ),
            ("", "empty"),
        ];
        for (id, message) in cases {
            assert_eq!(check_component_id(id), Err(message.to_string()), "{id}");
        }
    }

    #[test]
    fn variable_names_are_lower_snake_case_words() {
        for ok in ["jwt_secret", "llm_host_openai", "host1", "a1_b2"] {
            assert_eq!(check_variable_name(ok), Ok(()), "{ok}");
        }
        let cases = [
            (
                "llm_allowed_host_1",
                "'_'-separated words must start with an ASCII letter; got '1'",
            ),
            ("kebab-case", "words must be separated with '_', not '-'"),
            (
                "double__underscore",
                "'_'-separated words must not be empty",
            ),
            ("trailing_", "'_'-separated words must not be empty"),
            (
                "API_KEY",
                "Lower-case identifiers must be all lowercase; got \"API_KEY\"",
            ),
            (
                "mIxEd_case",
                "'_'-separated words must be all lowercase or all UPPERCASE; got \"mIxEd\"",
            ),
            (
                "bad+name",
                "'_'-separated words may only contain alphanumeric ASCII; got '+'",
            ),
        ];
        for (id, message) in cases {
            assert_eq!(check_variable_name(id), Err(message.to_string()), "{id}");
        }
    }

    #[test]
    fn labels_may_be_kebab_or_snake() {
        for ok in ["default", "my-db", "my_db", "MY_DB"] {
            assert_eq!(check_label(ok), Ok(()), "{ok}");
        }
        for bad in ["b@dlabel", "camelCase", "a-b_c", ""] {
            assert_eq!(
                check_label(bad),
                Err("expected kebab-case or snake_case".to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn runtime_keys_follow_the_resolvers_rules() {
        assert_eq!(check_runtime_key("a_1"), Ok(()));
        assert!(
            check_runtime_key("A")
                .unwrap_err()
                .contains("invalid character 'A'")
        );
        assert!(
            check_runtime_key("1a")
                .unwrap_err()
                .contains("must start with")
        );
        assert!(
            check_runtime_key("a_")
                .unwrap_err()
                .contains("must end with")
        );
        assert!(
            check_runtime_key("a__b")
                .unwrap_err()
                .contains("consecutive")
        );
    }
}
