//! The numbered SQL files of `migrations/`, embedded so that native hosts
//! (terminal-host, tests) apply exactly the files the runner applies.

/// One embedded migration file.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigration {
    /// File name, e.g. `0001_users.sql`.
    pub file_name: &'static str,
    /// SQL text.
    pub sql: &'static str,
}

macro_rules! migration {
    ($name:literal) => {
        EmbeddedMigration {
            file_name: $name,
            sql: include_str!(concat!("../../../migrations/", $name)),
        }
    };
}

/// Every migration, in order. A test checks this list against the folder.
pub const ALL: &[EmbeddedMigration] = &[
    migration!("0001_users.sql"),
    migration!("0002_terminal.sql"),
    migration!("0003_llm.sql"),
    migration!("0004_chat.sql"),
    migration!("0005_stats.sql"),
    migration!("0006_rule_options.sql"),
    migration!("0007_reply_streams.sql"),
    migration!("0008_message_tree.sql"),
    migration!("0009_access_tokens.sql"),
    migration!("0010_terminal_hosts.sql"),
    migration!("0011_vectors.sql"),
];

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_list_matches_the_migrations_folder() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = super::ALL.iter().map(|m| m.file_name).collect();
        assert_eq!(
            on_disk, embedded,
            "add new migration files to migrations::ALL"
        );
    }
}
