//! Embeds files into the binary, so `cairn` needs no files beside it and new
//! files are picked up without touching Rust code:
//! - the SQL migrations of `../migrations/{sqlite,postgres}`;
//! - the plugin skeletons of `../plugins/templates/<lang>/<kind>/` (for `cairn plugin new`).

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("migrations.rs"), migrations(&root.join("migrations"))).unwrap();
    std::fs::write(out_dir.join("templates.rs"), templates(&root.join("plugins/templates"))).unwrap();
}

fn migrations(root: &Path) -> String {
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
    out
}

/// `TEMPLATES`: (path under `plugins/templates/`, contents) of every file,
/// sorted. Cargo reruns this when anything under the directory changes.
fn templates(root: &Path) -> String {
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(root, &mut files);
    files.sort();
    let mut out = String::from("pub const TEMPLATES: &[(&str, &[u8])] = &[\n");
    for path in files {
        let relative = path.strip_prefix(root).unwrap().to_str().expect("template paths are UTF-8").replace('\\', "/");
        writeln!(out, "    ({relative:?}, include_bytes!({:?})),", path.canonicalize().unwrap().display().to_string()).unwrap();
    }
    out.push_str("];\n");
    out
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy();
        // Build outputs an author may leave in a template while trying it.
        if ["target", "node_modules", "__pycache__", "dist"].contains(&name.as_ref()) {
            continue;
        }
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}
