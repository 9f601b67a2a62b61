//! `cairn plugin ...`: check, bench, test and new. A plugin is loaded here
//! exactly as the server loads it (the same runtime, limits and sandbox),
//! with no server running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::Subcommand;

use crate::config::{Config, PluginConfig, PluginKind};
use crate::plugins::{Inspection, LoadedPlugin, PluginRuntime};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Validate a plugin component and print what it is (kind, WIT version, world, exports),
    /// what a fresh instance costs, and whether its limits leave room for that.
    Check {
        file: PathBuf,
        /// The plugin's configuration: a Cairn config file with its `[[plugins]]` entry, or a
        /// TOML table of its `[plugins.config]` settings alone.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Measure the per-call cost of an auth-policy plugin, fresh instance vs reused.
    Bench {
        file: PathBuf,
        /// The plugin's config table, as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
        #[arg(long, default_value_t = 2000)]
        calls: u32,
    },
    /// Run a plugin against test cases (a TOML or JSON file) with no server; a failing
    /// case prints its input, the expected and the actual answer, and the exit code is 1.
    Test {
        file: PathBuf,
        /// As for `check`: a Cairn config file or the plugin's `[plugins.config]` table.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The cases: `[[case]]` tables (TOML) or a JSON list; see docs/plugins.md.
        cases: PathBuf,
    },
    /// Write a new plugin: source, build script, README, config and test cases.
    New {
        name: String,
        #[arg(long, value_parser = ["rust", "js", "python"])]
        lang: String,
        #[arg(long, value_parser = ["auth-policy", "block-rule", "upstream-adapter", "hook-formatter"])]
        kind: String,
        /// Where to write it (default: ./NAME); it must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    // `test` prints each failure itself; the runtime's warnings would repeat them.
    crate::telemetry::init(if matches!(command, PluginCommand::Test { .. }) { "error" } else { "warn" });
    match command {
        PluginCommand::Check { file, config } => check(&file, config.as_deref()).await,
        PluginCommand::Bench { file, config, calls } => bench(&file, &config, calls).await,
        PluginCommand::Test { file, config, cases } => {
            let standalone = Standalone::load(&file, config.as_deref()).await?;
            let plugin = standalone.plugin.as_ref().map_err(|e| anyhow!("{} does not start: {e}", file.display()))?;
            let (passed, failed) = super::plugin_cases::run(plugin, &cases).await?;
            println!("{passed} passed, {failed} failed");
            if failed > 0 {
                bail!("{failed} of {} case(s) failed", passed + failed);
            }
            Ok(())
        }
        PluginCommand::New { name, lang, kind, dir } => super::plugin_new::run(&name, &lang, &kind, dir),
    }
}

/// One plugin loaded outside a server. `plugin` is the error of its start
/// (`init` refusing its configuration, say) when it does not start.
pub(super) struct Standalone {
    pub inspection: Inspection,
    pub compile: Duration,
    pub plugin: Result<Arc<LoadedPlugin>, String>,
    /// Whether the configuration came from `--config`.
    pub configured: bool,
    _runtime: PluginRuntime,
}

impl Standalone {
    pub async fn load(file: &Path, config: Option<&Path>) -> anyhow::Result<Standalone> {
        let runtime = PluginRuntime::new(cache_dir())?;
        let bytes = std::fs::read(file).map_err(|e| anyhow!("cannot read {}: {e}", file.display()))?;
        let started = Instant::now();
        let (component, _) = tokio::task::block_in_place(|| runtime.compile(&bytes))
            .map_err(|e| anyhow!("{} is not a usable Cairn plugin: {e:#}", file.display()))?;
        let compile = started.elapsed();
        let inspection = crate::plugins::inspect(runtime.engine(), &component)
            .map_err(|e| anyhow!("{} is not a usable Cairn plugin: {e:#}", file.display()))?;
        let pc = plugin_config(file, config, inspection.kind)?;
        let cfg = Config { plugins: vec![pc.clone()], ..Config::default() };
        let plugin = match runtime.load_set(&cfg).await {
            Ok(set) => Ok(set.get(&pc.name).expect("the one plugin").clone()),
            Err(e) => Err(format!("{e:#}")),
        };
        Ok(Standalone { inspection, compile, plugin, configured: config.is_some(), _runtime: runtime })
    }
}

/// Compiled plugins are cached like the server's (keyed by the wasm's sha256
/// and the engine), under `$XDG_CACHE_HOME/cairn` or `~/.cache/cairn`.
fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cairn-{}", std::process::id())));
    base.join("cairn").join("plugin-cache")
}

/// The plugin's `[[plugins]]` entry: from a Cairn config file (the entry whose
/// `path` has FILE's name, or its only entry of FILE's kind; its `path` is
/// replaced by FILE), from a bare settings table, or defaults.
fn plugin_config(file: &Path, config: Option<&Path>, kind: PluginKind) -> anyhow::Result<PluginConfig> {
    let path = std::fs::canonicalize(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
    let mut pc = PluginConfig {
        name,
        kind,
        path: path.clone(),
        timeout_ms: None,
        max_memory_mb: None,
        on_error: None,
        allowed_hosts: Vec::new(),
        config: toml::Table::new(),
    };
    let Some(config) = config else { return Ok(pc) };
    let text = std::fs::read_to_string(config).map_err(|e| anyhow!("cannot read {}: {e}", config.display()))?;
    let mut table: toml::Table = text.parse().map_err(|e| anyhow!("{}: {e}", config.display()))?;
    let Some(entries) = table.remove("plugins") else {
        pc.config = table;
        return Ok(pc);
    };
    let entries: Vec<PluginConfig> = entries.try_into().map_err(|e| anyhow!("{}: [[plugins]]: {e}", config.display()))?;
    let same_file: Vec<_> = entries.iter().filter(|p| p.path.file_name() == file.file_name()).collect();
    let same_kind: Vec<_> = entries.iter().filter(|p| p.kind == kind).collect();
    let chosen = match (same_file.as_slice(), same_kind.as_slice()) {
        ([one], _) | ([], [one]) => (*one).clone(),
        _ => bail!(
            "{}: no single [[plugins]] entry for {} (none or several with its file name, and none or several of kind {})",
            config.display(),
            file.display(),
            kind.as_str()
        ),
    };
    Ok(PluginConfig { path, ..chosen })
}

async fn check(file: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    let standalone = Standalone::load(file, config).await?;
    let inspection = &standalone.inspection;
    println!("file:        {}", file.display());
    println!("kind:        {}", inspection.kind.as_str());
    println!("wit:         cairn:plugin@{} (this Cairn: {})", inspection.wit_version, crate::plugins::WIT_VERSION);
    println!("world:       {}", inspection.world());
    println!("exports:     {}", inspection.exports.join(", "));
    println!("imports:     {}", inspection.imports.join(", "));
    println!("size:        {} bytes", std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
    println!("compile:     {} (native code cached in {})", ms(standalone.compile), cache_dir().display());
    let plugin = match &standalone.plugin {
        Ok(plugin) => plugin,
        Err(e) if standalone.configured => bail!("it does not start with this configuration: {e}"),
        Err(e) => {
            println!("start:       failed without a configuration (give one with --config): {e}");
            return Ok(());
        }
    };
    let probe = plugin.probe().await.map_err(|f| anyhow!("a fresh instance fails with these limits: {}", f.message))?;
    let (timeout, max_memory) = plugin.limits();
    println!("start:       {} (instantiate + init)", ms(probe.start));
    if let Some(first) = probe.first_call {
        println!("first call:  {} (a new instance's first call gets {} ms)", ms(first), crate::plugins::setup_budget(timeout).as_millis());
    }
    if let Some(warm) = probe.warm_call {
        println!(
            "warm call:   {:.1} us (mean of {} calls on the same instance; limit timeout_ms = {})",
            warm.as_secs_f64() * 1e6,
            crate::plugins::WARM_CALLS,
            timeout.as_millis()
        );
    }
    println!("memory:      {:.1} MiB after its first call (limit max_memory_mb = {})", mib(probe.memory_bytes), max_memory >> 20);
    for warning in tight_limits(&probe, timeout, max_memory) {
        println!("warning:     {warning}");
    }
    Ok(())
}

/// Limits that leave less than half again what a fresh instance used. Its
/// start and first call each get `plugins::setup_budget` (at least 1 s);
/// later calls get `timeout_ms`.
fn tight_limits(probe: &crate::plugins::Probe, timeout: Duration, max_memory: usize) -> Vec<String> {
    let mut out = Vec::new();
    let setup = crate::plugins::setup_budget(timeout);
    let tight = |took: Duration, budget: Duration| took.as_secs_f64() * 1.5 > budget.as_secs_f64();
    if let Some(warm) = probe.warm_call.filter(|warm| tight(*warm, timeout)) {
        out.push(format!(
            "a warm call took {} of its {} ms timeout: raise timeout_ms (to at least {})",
            ms(warm),
            timeout.as_millis(),
            (warm.as_millis() * 2).max(100)
        ));
    }
    for (what, took) in [("start (instantiate + init)", Some(probe.start)), ("first call", probe.first_call)] {
        if let Some(took) = took.filter(|t| tight(*t, setup)) {
            out.push(format!(
                "its {what} took {} of the {} ms it gets: raise timeout_ms (to at least {})",
                ms(took),
                setup.as_millis(),
                took.as_millis() * 2
            ));
        }
    }
    if probe.memory_bytes as f64 * 1.5 > max_memory as f64 {
        out.push(format!(
            "it holds {:.1} MiB of its {} MiB memory limit after one call: raise max_memory_mb (to at least {})",
            mib(probe.memory_bytes),
            max_memory >> 20,
            (probe.memory_bytes >> 20) * 2
        ));
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn bench(file: &Path, config: &str, calls: u32) -> anyhow::Result<()> {
    let table: toml::Table = serde_json::from_str::<serde_json::Value>(config)
        .map_err(|e| anyhow!("--config is not JSON: {e}"))
        .and_then(|v| toml::Table::try_from(v).map_err(|e| anyhow!("--config: {e}")))?;
    let dir = std::env::temp_dir().join(format!("cairn-plugin-bench-{}", std::process::id()));
    let mut cfg = Config { data_dir: dir.clone(), ..Config::default() };
    cfg.plugins.push(PluginConfig {
        name: "bench".into(),
        kind: PluginKind::AuthPolicy,
        path: std::fs::canonicalize(file)?,
        timeout_ms: Some(1000),
        max_memory_mb: None,
        on_error: None,
        allowed_hosts: Vec::new(),
        config: table,
    });
    let result: anyhow::Result<(bool, Duration, Duration)> = async {
        let plugins = crate::plugins::Plugins::load(&cfg).await?;
        let set = plugins.current();
        let plugin = set.get("bench").expect("loaded");
        let (fresh, reused) = plugin.bench_authorize(calls).await.map_err(|f| anyhow!("{}", f.message))?;
        Ok((plugins.runtime().pooling, fresh, reused))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let (pooling, fresh, reused) = result?;
    println!("allocator:        {}", if pooling { "pooling" } else { "on-demand" });
    println!("fresh instance:   {:.1} us per decision (instantiate + init + authorize)", fresh.as_secs_f64() * 1e6);
    println!("reused instance:  {:.1} us per decision", reused.as_secs_f64() * 1e6);
    Ok(())
}
