//! Command line: `serve`, `migrate`, `config`, `admin create`.

use crate::config::{load, CliOverrides, DatabaseOverrides, ServerOverrides};
use crate::logformat::{JsonFields, JsonLine};
use crate::logwriter::{BufferedLog, LogGuard};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use firefly_core::config::{Config, LogFormat};
use firefly_server::Server;
use firefly_store::Role;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "firefly", version, about = "Self-hosted AI platform backend")]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, global = true, env = "FIREFLY_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and generated secrets.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (sqlite:, mysql: or postgres:).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (applies pending migrations first unless --no-migrate).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration, secrets masked.
    Config,
    /// Administrator accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, such as 0.0.0.0:8080.
    #[arg(long)]
    listen: Option<String>,
    /// Do not apply migrations on start.
    #[arg(long)]
    no_migrate: bool,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go in arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = CliOverrides { data_dir: cli.data_dir.clone(), ..Default::default() };
    if cli.database_url.is_some() {
        overrides.database = Some(DatabaseOverrides { url: cli.database_url.clone(), ..Default::default() });
    }
    if let Command::Serve(args) = &cli.command {
        if let Some(listen) = &args.listen {
            overrides.server = Some(ServerOverrides { listen: Some(listen.clone()) });
        }
        if args.no_migrate {
            overrides.database.get_or_insert_with(Default::default).auto_migrate = Some(false);
        }
    }
    let file = cli.config.as_deref();
    match cli.command {
        Command::Config => {
            let config = load(file, &overrides, false)?;
            print!("{}", toml::to_string_pretty(&config).context("rendering the configuration")?);
            Ok(())
        }
        Command::Migrate => {
            let config = load(file, &overrides, false)?;
            let _log = init_logging(&config);
            let store = crate::open_store(&config).await?;
            store.migrate().await.context("applying migrations")?;
            let status = store.migration_status().await?;
            println!("migrations current: {} of {} applied ({})", status.applied, status.expected, store.kind());
            Ok(())
        }
        Command::Serve(_) => {
            let config = load(file, &overrides, true)?;
            let _log = init_logging(&config);
            let store = crate::open_store(&config).await?;
            let server = Server::build(config, store).await?;
            server.run().await
        }
        Command::Admin(AdminCommand::Create { email, password_stdin: _, display_name }) => {
            let config = load(file, &overrides, true)?;
            let _log = init_logging(&config);
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let store = crate::open_store(&config).await?;
            if config.database.auto_migrate {
                store.migrate().await.context("applying migrations")?;
            }
            let state = firefly_server::AppState::new(config, store)?;
            let user =
                firefly_server::accounts::create_user(&state, &email, password, display_name.as_deref(), Role::Admin)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}{}", e.0.message, field_details(&e.0)))?;
            println!("created administrator {} (id {})", user.email, user.id);
            Ok(())
        }
    }
}

fn field_details(e: &firefly_core::Error) -> String {
    e.details
        .as_ref()
        .and_then(|d| d.get("fields"))
        .and_then(|f| f.as_array())
        .map(|fields| {
            fields
                .iter()
                .map(|f| format!("\n  {}: {}", f["field"].as_str().unwrap_or(""), f["reason"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

/// Logs go to standard error through [`BufferedLog`]: a request never waits on a
/// `write(2)` or wakes a thread to log its line. Keep the guard until the command ends:
/// dropping it writes out what is still buffered.
fn init_logging(config: &Config) -> LogGuard<std::io::Stderr> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = BufferedLog::new(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match config.log.format {
        LogFormat::Json => builder.fmt_fields(JsonFields).event_format(JsonLine).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    guard
}
