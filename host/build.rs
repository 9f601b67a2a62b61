//! Embeds the SQL migrations of `../migrations/{sqlite,postgres}` into the binary,
//! so `cairn` needs no files beside it and new migration files are picked up
//! without touching Rust code.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut out = String::new();
    for backend in ["sqlite", "postgres"] {
        let dir = root.join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        writeln!(out, "pub const {}: &[(i64, &str, &str)] = &[", backend.to_uppercase()).unwrap();
        for path in files {
            println!("cargo:rerun-if-changed={}", path.display());
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            let (version, description) = stem.split_once('_').expect("migration files are named NNNN_description.sql");
            let version: i64 = version.parse().expect("migration version is a number");
            writeln!(out, "    ({version}, {description:?}, include_str!({:?})),", path.canonicalize().unwrap().display().to_string())
                .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(dest, out).unwrap();
}
