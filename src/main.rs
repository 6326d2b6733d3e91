//! The `mailcanary` command line: thin, everything lives in the library.

use clap::{Parser, Subcommand, ValueEnum};
use mailcanary::outcome::{Outcome, Placement};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mailcanary",
    version,
    about = "Email delivery health monitor: signed canaries through every provider, watched in every inbox, exported as Prometheus metrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: probes on schedule, /metrics, /api/v1/status.
    Run {
        #[arg(long, short, default_value = "probes.yaml", env = "MAILCANARY_CONFIG")]
        config: PathBuf,
    },
    /// Check a config file: exit 0, or print every problem and exit 2.
    Validate {
        #[arg(long, short, default_value = "probes.yaml", env = "MAILCANARY_CONFIG")]
        config: PathBuf,
    },
    /// Send one canary now and follow it: exit 0 only when it reaches the inbox.
    Check {
        #[arg(long, short, default_value = "probes.yaml", env = "MAILCANARY_CONFIG")]
        config: PathBuf,
        /// The probe (route) to check.
        #[arg(long)]
        probe: String,
    },
    /// The post-incident review from the ledger: per route, what was sent,
    /// delivered, late or lost, latency percentiles, and when delivery failed.
    Report {
        #[arg(long, short, default_value = "probes.yaml", env = "MAILCANARY_CONFIG")]
        config: PathBuf,
        /// How far back: 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// A delivery slower than this counts as delayed (and a canary in
        /// flight for longer as overdue); default: the config's
        /// `global.status_page.slow`, 90s unless set.
        #[arg(long)]
        slow: Option<String>,
        /// List every canary that went wrong: refused, lost, bounced, late, delayed, overdue, in spam.
        #[arg(long)]
        canaries: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the review as one self-contained HTML file, with charts.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// After an outage: every real message it hurt (delivered late, bounced,
    /// deferred and never delivered, no final event), with a summary for
    /// the message to customers.
    Impact {
        #[arg(long, short, default_value = "probes.yaml", env = "MAILCANARY_CONFIG")]
        config: PathBuf,
        /// An incident: the status page's id, or its start time.
        #[arg(long, conflicts_with_all = ["provider", "since", "until"], required_unless_present = "provider")]
        incident: Option<String>,
        /// A provider (its name in the ledger), with --since.
        #[arg(long, requires = "since")]
        provider: Option<String>,
        /// From: a time (2026-12-05T14:00:00Z) or a duration back from now (2h).
        #[arg(long)]
        since: Option<String>,
        /// Until (default: now).
        #[arg(long)]
        until: Option<String>,
        /// A delivery slower than this counts as late; default: the
        /// config's `global.status_page.slow`, 90s unless set.
        #[arg(long)]
        slow: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: ImpactFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ImpactFormat {
    Text,
    Csv,
    Json,
}

/// Logs on standard error, coloured only on a terminal and never when
/// `NO_COLOR` is set, every secret taken out of every line whatever the
/// filter lets through (crate::redact). `check` passes its own writer,
/// which keeps log lines out of its live progress line.
fn init_logs<W>(format: LogFormat, default: &str, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let writer = mailcanary::redact::Redacting(writer);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(colour);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = || tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Run { config } => {
            // SAFETY: main's only thread so far (no runtime, no log yet).
            unsafe { mailcanary::service::return_large_buffers() };
            init_logs(cli.log_format, "info", std::io::stderr);
            match runtime().block_on(mailcanary::service::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mailcanary: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Report { config, since, slow, canaries, json, html } => {
            use mailcanary::report_command::{Args, command};
            let args =
                Args { config: &config, since: &since, slow: slow.as_deref(), canaries, json, html: html.as_deref() };
            printed(command(&args))
        }
        Command::Impact { config, incident, provider, since, until, slow, format } => {
            use mailcanary::traffic::impact::{Args, Format, command};
            let format = match format {
                ImpactFormat::Text => Format::Text,
                ImpactFormat::Csv => Format::Csv,
                ImpactFormat::Json => Format::Json,
            };
            let args = Args {
                config: &config,
                incident: incident.as_deref(),
                provider: provider.as_deref(),
                since: since.as_deref(),
                until: until.as_deref(),
                slow: slow.as_deref(),
                format,
            };
            printed(command(&args))
        }
        Command::Check { config, probe } => {
            init_logs(cli.log_format, "warn", mailcanary::check::LogWriter);
            match runtime().block_on(mailcanary::check::check(&config, &probe)) {
                Ok(Outcome::Delivered { placement: Placement::Inbox, .. }) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("mailcanary: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `validate`: refuses whatever `run` would refuse (exit status 2, what to
/// change on standard error).
fn validate(config: &std::path::Path) -> ExitCode {
    let loaded = mailcanary::config::load(config)
        .map_err(|e| e.to_string())
        .and_then(|c| mailcanary::runtime::preflight(&c).map(|()| c));
    match loaded {
        Ok(c) => {
            use mailcanary::words::count;
            let (providers, inboxes) = (c.providers.len(), c.inboxes.len());
            let routes = count(c.routes.len(), "route", "routes");
            let (providers, inboxes) = (count(providers, "provider", "providers"), count(inboxes, "inbox", "inboxes"));
            println!("{}: OK ({providers}, {inboxes}, {routes})", config.display());
            ExitCode::SUCCESS
        }
        // The error names the file, the key and the line itself.
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// A command's text on stdout, or its error on stderr with exit status 2.
fn printed<E: std::fmt::Display>(result: Result<String, E>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mailcanary: {e}");
            ExitCode::from(2)
        }
    }
}
