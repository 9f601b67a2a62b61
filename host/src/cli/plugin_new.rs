//! `cairn plugin new`: writes a plugin skeleton from the templates embedded
//! at build time (`plugins/templates/<lang>/<kind>/`, plus the files of
//! `plugins/templates/<lang>/_all/` for every kind; host/build.rs lists them)
//! and the WIT contract (`wit/plugin.wit`) it builds against.
//!
//! Placeholders in template files: `{{name}}` (as given, kebab-case),
//! `{{name_snake}}` (the `.wasm` file's stem), `{{kind}}`, `{{world}}`, `{{wit_version}}`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

const WIT: &str = include_str!("../../../wit/plugin.wit");

pub fn run(name: &str, lang: &str, kind: &str, dir: Option<PathBuf>) -> anyhow::Result<()> {
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("the name {name:?} must be lower-case letters, digits and dashes, starting with a letter");
    }
    let files = files(lang, kind)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} exists and is not empty", dir.display());
    }
    let snake = name.replace('-', "_");
    let replace = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{name_snake}}", &snake)
            .replace("{{kind}}", kind)
            .replace("{{world}}", kind)
            .replace("{{wit_version}}", crate::plugins::WIT_VERSION)
    };
    let mut written = vec![];
    for (path, bytes) in files.iter().chain([&("wit/plugin.wit".to_string(), WIT.as_bytes())]) {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => std::fs::write(&target, replace(text)),
            Err(_) => std::fs::write(&target, bytes),
        }
        .map_err(|e| anyhow!("cannot write {}: {e}", target.display()))?;
        if path.ends_with(".sh") {
            make_executable(&target)?;
        }
        written.push(path.clone());
    }
    println!("wrote a {lang} {kind} plugin in {}:", dir.display());
    for path in written {
        println!("  {path}");
    }
    println!("next: cd {} && ./test.sh   (builds dist/{snake}.wasm and runs `cairn plugin test` on cases.toml)", dir.display());
    Ok(())
}

/// The template files of `lang`/`kind` (paths relative to the skeleton): the
/// language's `_all/` files, overridden by the kind's own.
fn files(lang: &str, kind: &str) -> anyhow::Result<Vec<(String, &'static [u8])>> {
    let lang_dir = if lang == "python" { "py" } else { lang };
    let own = format!("{lang_dir}/{kind}/");
    let common = format!("{lang_dir}/_all/");
    let mut files: Vec<(String, &'static [u8])> = Vec::new();
    for prefix in [&common, &own] {
        for (path, bytes) in TEMPLATES.iter().filter_map(|(p, b)| p.strip_prefix(prefix.as_str()).map(|rest| (rest, *b))) {
            files.retain(|(p, _)| p != path);
            files.push((path.to_string(), bytes));
        }
    }
    if !TEMPLATES.iter().any(|(p, _)| p.starts_with(&own)) {
        let have: std::collections::BTreeSet<String> = TEMPLATES
            .iter()
            .filter_map(|(p, _)| {
                let mut parts = p.splitn(3, '/');
                let (lang, kind, _file) = (parts.next()?, parts.next()?, parts.next()?);
                (kind != "_all").then(|| format!("{lang}/{kind}"))
            })
            .collect();
        bail!("this Cairn has no {lang} template for {kind} (it has: {})", have.into_iter().collect::<Vec<_>>().join(", "));
    }
    Ok(files)
}

fn make_executable(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| anyhow!("cannot chmod {}: {e}", path.display()))?;
    }
    let _ = path;
    Ok(())
}
