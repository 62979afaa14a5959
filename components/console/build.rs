//! Embeds the built console (`console/dist`, made by `npm --prefix console run build`)
//! into the component: one `Asset` per file, with its media type, a gzip copy when it
//! is smaller, and a strong ETag. Fails with the command to run when nothing is built.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest_dir.join("../../console/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dist) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => panic!(
            "{} cannot be read ({e}): build the console first with \
             `npm --prefix console ci && npm --prefix console run build` \
             (`arcana build` does both)",
            dist.display()
        ),
    };
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("index.html")),
        "{} has no index.html: run `npm --prefix console run build`",
        dist.display()
    );
    let mut code =
        String::from("/// Every file of the built console.\npub static ASSETS: &[Asset] = &[\n");
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 file names");
        let bytes = std::fs::read(file).expect("readable build output");
        let etag = format!("\"{}\"", &hex(&Sha256::digest(&bytes))[..32]);
        let gzip = gzipped(&bytes)
            .filter(|gz| gz.len() + 64 < bytes.len())
            .map(|gz| {
                let path = out_dir.join(format!("{name}.gz"));
                std::fs::write(&path, gz).expect("writable OUT_DIR");
                path
            });
        writeln!(
            code,
            "    Asset {{ name: {name:?}, content_type: {:?}, body: include_bytes!({:?}), gzip: {}, etag: {etag:?} }},",
            content_type(file),
            file.canonicalize().expect("existing file"),
            match gzip {
                Some(p) => format!("Some(include_bytes!({p:?}))"),
                None => "None".into(),
            },
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("assets.rs"), code).expect("writable OUT_DIR");
}

/// The media type for a built file, by extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn gzipped(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).ok()?;
    enc.finish().ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
