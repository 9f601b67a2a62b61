//! The `cairn` command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::server;

mod plugin;
mod plugin_cases;
mod plugin_new;

use plugin::PluginCommand;

#[derive(Parser)]
#[command(name = "cairn", version, about = "An npm registry with WebAssembly policy plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server.
    Serve {
        /// TOML configuration file; without one, defaults apply (127.0.0.1:7001, SQLite under ./data).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Queue syncs of packages from their upstream and follow them until they finish.
    Sync {
        /// Package names.
        #[arg(required_unless_present = "binaries")]
        names: Vec<String>,
        /// Sync this binary mirror (a `[[binaries]]` category); repeatable.
        #[arg(long = "binary")]
        binaries: Vec<String>,
        /// Do not queue the packages' dependencies.
        #[arg(long)]
        nodeps: bool,
        /// Sync from this registry instead of the one routing chooses.
        #[arg(long)]
        registry: Option<String>,
        /// Only these versions (plus latest); repeatable.
        #[arg(long = "version")]
        versions: Vec<String>,
        /// Re-sync versions already here.
        #[arg(long)]
        force_history: bool,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Manage users without going through HTTP.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Work with the blob store (tarballs, binaries, task logs).
    Blobs {
        #[command(subcommand)]
        command: BlobsCommand,
    },
}

#[derive(Subcommand)]
enum BlobsCommand {
    /// Copy every blob from one store to another, e.g. `--from local --to s3` to move
    /// an installation to object storage. Resumable: objects already there with the
    /// same size and SHA-256 are skipped. Verified: every copy is read back and compared.
    Copy {
        #[arg(long, value_parser = ["local", "s3"])]
        from: String,
        #[arg(long, value_parser = ["local", "s3"])]
        to: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (for example the first admin when public registration is off).
    Create {
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Make the user an administrator (admins are never created over HTTP).
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sizes the runtime from its configuration, so that is read first.
    let serve_config = match &cli.command {
        Command::Serve { config } => match load(config.as_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {}", crate::telemetry::redact(&format!("{e:#}")));
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = serve_config.as_ref().map(|c| c.worker_threads).filter(|n| *n > 0) {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, serve_config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Start-up errors can quote configured URLs: no credentials on the terminal or in the log.
            eprintln!("error: {}", crate::telemetry::redact(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn load(config: Option<&PathBuf>) -> anyhow::Result<Config> {
    let config = Config::load(config.map(|p| p.as_path()))?;
    crate::telemetry::init(&config.log.level);
    Ok(config)
}

/// Runs the command; `serve_config` is `serve`'s configuration, loaded by `main`.
async fn run(cli: Cli, serve_config: Option<Config>) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let mut config = match serve_config {
                Some(c) => c,
                None => load(config.as_ref())?,
            };
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
            config.bound_to(listener.local_addr()?);
            let app = server::build_app(config).await?;
            server::serve(app, listener, server::shutdown_signal()).await
        }
        Command::Migrate { config } => {
            let mut config = load(config.as_ref())?;
            config.plugins.clear();
            let app = server::build_app(config).await?;
            app.store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Sync { names, binaries, nodeps, registry, versions, force_history, config } => {
            let config = load(config.as_ref())?;
            let app = server::build_app(config).await?;
            let options = crate::domain::sync::SyncOptions {
                skip_dependencies: nodeps,
                force_sync_history: force_history,
                registry_name: registry,
                specific_versions: (!versions.is_empty()).then_some(versions),
                tips: Some("cairn sync".into()),
                ..Default::default()
            };
            let ok = crate::sync_cli::run(app.clone(), &names, &binaries, options).await;
            app.store.close().await;
            ok
        }
        Command::Blobs { command: BlobsCommand::Copy { from, to, config } } => copy_blobs(load(config.as_ref())?, &from, &to).await,
        Command::Plugin { command } => plugin::run(command).await,
        Command::User { command: UserCommand::Create { name, email, admin, password_stdin: _, config } } => {
            let mut config = load(config.as_ref())?;
            config.plugins.clear();
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let password = input.lines().next().unwrap_or("").to_string();
            let app = server::build_app(config).await?;
            let result = crate::domain::users::create(&app, &name, email.as_deref(), &password, admin).await;
            app.store.close().await;
            let user = result.map_err(|e| anyhow::anyhow!("cannot create user {name}: {e}"))?;
            let role = if crate::domain::users::is_admin(&app, &user) { "admin" } else { "user" };
            println!("created {role} {}", user.name);
            Ok(())
        }
    }
}

/// `cairn blobs copy`: one line per object, then a summary.
async fn copy_blobs(config: Config, from: &str, to: &str) -> anyhow::Result<()> {
    use crate::config::BlobKind;
    let kind = |s: &str| if s == "s3" { BlobKind::S3 } else { BlobKind::Local };
    if from == to {
        anyhow::bail!("--from and --to name the same store ({from})");
    }
    config.blobs.validate_s3().map_err(|e| anyhow::anyhow!("copying to or from s3 needs the [blobs] S3 keys: {e}"))?;
    let source = crate::blob::open_kind(&config, kind(from)).await?;
    let dest = crate::blob::open_kind(&config, kind(to)).await?;
    println!("copying every blob from {} to {}", source.describe(), dest.describe());
    let report = crate::blob::copy::copy_all(source.as_ref(), dest.as_ref(), |p| {
        let what = match p.outcome {
            crate::blob::copy::Outcome::Copied => "copied and verified",
            crate::blob::copy::Outcome::Present => "already there (same size and sha256)",
        };
        println!("[{}/{}] {} {} bytes: {what}", p.done, p.total, p.key, p.size);
    })
    .await?;
    println!(
        "done: {} copied ({} bytes), {} already there; every object checked by size and sha256",
        report.copied, report.bytes, report.present
    );
    Ok(())
}
