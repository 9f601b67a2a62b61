//! The plugin author's commands, through the real binary: `cairn plugin new`
//! skeletons (Rust, JavaScript and Python, every kind) built and passing their own
//! `cairn plugin test`; `cairn plugin test` reporting a failing case; the
//! block-rules samples' shared cases run against each language's build; and
//! `cairn plugin check` describing a Python component and its costs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_e2e::{cairn_bin, plugin, plugin_dir};

const KINDS: &[&str] = &["auth-policy", "block-rule", "upstream-adapter", "hook-formatter"];

/// The block-rules sample's builds, one per language: (label, file stem).
const BLOCK_RULES: &[(&str, &str)] = &[("rust", "block_rules"), ("py", "block_rules_py")];

/// `cairn plugin ...`, with compiled plugins cached beside the test plugins
/// (shared by the tests, so a Python component is compiled once per run).
fn cairn(args: &[&str]) -> Command {
    let mut c = Command::new(cairn_bin());
    c.arg("plugin").args(args).env("XDG_CACHE_HOME", work_dir("cli-cache"));
    c
}

fn work_dir(name: &str) -> PathBuf {
    plugin_dir().parent().expect("the plugins' parent dir").join(name)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases").join(name)
}

/// A Cairn config file in `dir` whose block-rule entry for `file` has a
/// generous timeout (the tests share 2 cores; limits have tests of their own),
/// `extra` keys and the settings of `settings`.
fn block_rule_config(dir: &Path, file: &str, extra: &str, settings: &Path) -> PathBuf {
    let path = dir.join(format!("{file}.cairn.toml"));
    let settings = std::fs::read_to_string(settings).unwrap();
    let entry = format!("[[plugins]]\nname = \"rules\"\nkind = \"block-rule\"\npath = \"{file}.wasm\"\ntimeout_ms = 2000\n{extra}\n");
    std::fs::write(&path, format!("{entry}[plugins.config]\n{settings}")).unwrap();
    path
}

/// `cairn plugin new` for every kind in `lang`, then each skeleton's own
/// `test.sh` (its build script, then `cairn plugin test` on its cases).
fn skeletons_build_and_pass(lang: &str) {
    let root = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let name = format!("my-{kind}");
        let dir = root.path().join(&name);
        let out = cairn(&["new", "--lang", lang, "--kind", kind, &name, "--dir"]).arg(&dir).output().unwrap();
        assert!(out.status.success(), "{lang} {kind}: {}", text(&out));
        for file in ["README.md", "build.sh", "test.sh", "cases.toml", "config.toml", "wit/plugin.wit"] {
            assert!(dir.join(file).exists(), "{lang} {kind}: no {file}");
        }
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains(&format!("# {name}")) && !readme.contains("{{"), "{lang} {kind}: placeholders left:\n{readme}");
        let out = Command::new(dir.join("test.sh"))
            .env("CAIRN", cairn_bin())
            .env("XDG_CACHE_HOME", work_dir("cli-cache"))
            .env("CARGO_TARGET_DIR", work_dir("skeleton-target"))
            .output()
            .unwrap();
        let all = text(&out);
        assert!(out.status.success(), "{lang} {kind}: test.sh failed:\n{all}");
        let cases = std::fs::read_to_string(dir.join("cases.toml")).unwrap().matches("[[case]]").count();
        assert!(cases >= 2 && all.contains(&format!("{cases} passed, 0 failed")), "{lang} {kind}:\n{all}");
        // The skeleton's test can fail: break one expectation and it does.
        let cases_text = std::fs::read_to_string(dir.join("cases.toml")).unwrap();
        let broken = dir.join("broken.toml");
        std::fs::write(&broken, cases_text.replacen("expect = \"", "expect = \"not-", 1)).unwrap();
        let wasm = dir.join(format!("dist/{}.wasm", name.replace('-', "_")));
        let out = cairn(&["test"]).arg(&wasm).arg("--config").arg(dir.join("config.toml")).arg(&broken).output().unwrap();
        assert!(!out.status.success() && text(&out).contains(&format!("{} passed, 1 failed", cases - 1)), "{lang} {kind}: {}", text(&out));
    }
}

#[test]
fn rust_skeletons_build_and_pass_their_tests() {
    skeletons_build_and_pass("rust");
}

#[test]
fn python_skeletons_build_and_pass_their_tests() {
    skeletons_build_and_pass("python");
}

#[test]
fn js_skeletons_build_and_pass_their_tests() {
    skeletons_build_and_pass("js");
}

#[test]
fn plugin_new_refuses_bad_names_and_used_directories() {
    let root = tempfile::tempdir().unwrap();
    let out = cairn(&["new", "--lang", "rust", "--kind", "block-rule", "Bad_Name", "--dir"]).arg(root.path().join("x")).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("lower-case"), "{}", text(&out));
    std::fs::write(root.path().join("keep.txt"), "mine").unwrap();
    let out = cairn(&["new", "--lang", "python", "--kind", "block-rule", "fine", "--dir"]).arg(root.path()).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("not empty"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(root.path().join("keep.txt")).unwrap(), "mine");
    let out = cairn(&["new", "--lang", "cobol", "--kind", "block-rule", "fine"]).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
}

/// The shared cases of the block-rules sample, against every language's build.
#[test]
fn block_rules_cases_pass_in_every_language() {
    let (config, cases) = (fixture("block_rules.config.toml"), fixture("block_rules.cases.toml"));
    let count = std::fs::read_to_string(&cases).unwrap().matches("[[case]]").count();
    let dir = tempfile::tempdir().unwrap();
    for (label, file) in BLOCK_RULES {
        let config = block_rule_config(dir.path(), file, "", &config);
        let out = cairn(&["test"]).arg(plugin(file)).arg("--config").arg(&config).arg(&cases).output().unwrap();
        let all = text(&out);
        assert!(out.status.success(), "{label}: {all}");
        assert!(all.contains(&format!("{count} passed, 0 failed")), "{label}: {all}");
        // A bad pattern refuses the plugin at start, naming it.
        let bad = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(bad.path(), "name_patterns = [\"(unclosed\"]\n").unwrap();
        let out = cairn(&["test"]).arg(plugin(file)).arg("--config").arg(bad.path()).arg(&cases).output().unwrap();
        assert!(!out.status.success() && text(&out).contains("(unclosed"), "{label}: {}", text(&out));
    }
}

#[test]
fn plugin_test_shows_the_input_expected_and_actual_answer_of_a_failing_case() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.json");
    let json = r#"[
        {"name": "good", "manifest": {"name": "fine", "version": "1.0.0"}, "expect": "accept"},
        {"name": "wrong", "manifest": {"name": "evil-x", "version": "1.0.0"}, "expect": "accept"},
        {"name": "wrong reason", "manifest": {"name": "evil-y", "version": "1.0.0"}, "expect": "block", "reason_contains": "licenses"}
    ]"#;
    std::fs::write(&cases, json).unwrap();
    // The plugin's entry of a Cairn config file works as --config too.
    let config = dir.path().join("cairn.toml");
    let entry = "[[plugins]]\nname = \"rules\"\nkind = \"block-rule\"\npath = \"elsewhere/block_rules.wasm\"\ntimeout_ms = 2000\n";
    std::fs::write(&config, format!("{entry}[plugins.config]\nname_patterns = [\"^evil-\"]\n")).unwrap();
    let out = cairn(&["test"]).arg(plugin("block_rules")).arg("--config").arg(&config).arg(&cases).output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("ok    good") && all.contains("FAIL  wrong") && all.contains("FAIL  wrong reason"), "{all}");
    assert!(all.contains(r#"input:    {"manifest":{"name":"evil-x","version":"1.0.0"}}"#), "{all}");
    assert!(all.contains("expected: accept\n"), "{all}");
    assert!(all.contains("actual:   block: evil-x@1.0.0 blocked by rule name_patterns"), "{all}");
    assert!(all.contains(r#"expected: block, reason containing "licenses""#), "{all}");
    assert!(all.contains("1 passed, 2 failed"), "{all}");
    // Cases that do not fit the plugin's kind are refused, not passed.
    std::fs::write(&cases, r#"[{"action": "publish", "package": "x", "expect": "allow"}]"#).unwrap();
    let out = cairn(&["test"]).arg(plugin("block_rules")).arg(&cases).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("unknown field"), "{}", text(&out));
}

#[test]
fn plugin_check_prints_the_world_and_the_cost_of_a_python_component() {
    let dir = tempfile::tempdir().unwrap();
    let config = block_rule_config(dir.path(), "block_rules_py", "", &fixture("block_rules.config.toml"));
    let out = cairn(&["check"]).arg(plugin("block_rules_py")).arg("--config").arg(&config).output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for needle in ["kind:        block-rule", "world:       block-rule", "cairn:plugin@0.1.1", "init, cairn:plugin/rule@0.1.1"] {
        assert!(all.contains(needle), "{needle:?} in:\n{all}");
    }
    assert!(all.contains("start:") && all.contains("first call:") && all.contains("warm call:") && all.contains("memory:"), "{all}");
    // Limits that leave too little room are called out (it holds about 12 MiB).
    let tight = block_rule_config(dir.path(), "block_rules_py", "max_memory_mb = 16", &fixture("block_rules.config.toml"));
    let out = cairn(&["check"]).arg(plugin("block_rules_py")).arg("--config").arg(&tight).output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("warning:") && all.contains("raise max_memory_mb"), "{all}");
}
