//! The `goldthread` binary: parses the command line, loads the configuration and hands over
//! to the library crates. No business logic lives here.

mod auth;
mod bench;
mod client;
mod config;
mod eval;
mod http;
mod link;
mod master_data;
mod output;
mod quality;
mod run;
mod sar;
mod state;

use std::path::PathBuf;

// mimalloc: the hub allocates many small strings; glibc malloc spent a third of the matching
// time consolidating and freeing them (mdm/examples/stream.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::ConfigArgs;
use connectors::sample::{GenerateOptions, NoiseConfig, generate};

#[derive(Debug, Parser)]
#[command(
    name = "goldthread",
    version,
    about = "Streaming data pipeline and master data hub for UK social landlords"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a sample landlord's exports (HMS, repairs feed, CRM, asset register) and ground truth.
    Generate {
        #[command(flatten)]
        sample: SampleArgs,
        /// Folder to write into (created if absent).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the pipeline over the configured sources.
    Run {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Merger linkage: match the configured file sources once (no broker) and write the
    /// cross-reference, golden records, review queue and a reconciliation report.
    Link {
        #[command(flatten)]
        link: link::LinkArgs,
    },
    /// Apply the PostgreSQL migrations (`mdm/migrations/`) and exit.
    Migrate {
        /// Configuration file (for `postgres.url`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// PostgreSQL URL (overrides `postgres.url`).
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Steward workflow against a running instance: review queue, decisions, splits, audit.
    /// The token comes from the environment (`--token-env`, default GOLDTHREAD_TOKEN).
    Steward {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::StewardCommand,
    },
    /// Put a person beyond use (a granted erasure request) in a running instance: personal
    /// data leaves the golden records, cross-reference, stored events and memory; tombstones
    /// go to the topics; the audit keeps source references only. Admin token.
    Erase {
        #[command(flatten)]
        connection: client::Connection,
        /// A golden person id (`GP-...`) or one of their source records (`hms:T000123`).
        subject: String,
        /// Why (audited), e.g. the request's reference.
        #[arg(long)]
        reason: String,
    },
    /// The KPI suite (`sql/kpi/*.sql`): over the configured sources (processed first, on the
    /// embedded broker unless `kafka.bootstrap_servers` is set), or from a running instance
    /// with `--url`.
    Kpi {
        #[command(flatten)]
        kpi: KpiArgs,
    },
    /// Benchmark: the KPI suite over N synthetic appointments, per file, and event-to-KPI
    /// latency; `sql/bench/kpi-suite` adds DuckDB on the same tables.
    BenchKpi {
        #[command(flatten)]
        bench: bench::BenchArgs,
    },
    /// Subject access report: everything held about one person, as JSON.
    Sar {
        #[command(flatten)]
        sar: sar::SarArgs,
    },
    /// The weekly data quality report of the master data sources against the recording
    /// standard (`[quality]`): report.html, issues.csv, report.json.
    QualityReport {
        #[command(flatten)]
        quality: quality::QualityArgs,
    },
    /// Train a person model on the configured person sources, without labels.
    Train {
        #[command(flatten)]
        train: link::TrainArgs,
    },
    /// Match the master data sources and score the result against labels (a benchmark command).
    Eval {
        #[command(flatten)]
        eval: eval::EvalArgs,
    },
    /// Generate a sample landlord into a data folder and run the pipeline on it.
    Demo {
        #[command(flatten)]
        sample: SampleArgs,
        /// Where the sample is written; the run's output goes to `<dir>/out`.
        #[arg(long, default_value = "data/demo")]
        dir: PathBuf,
        /// Process all input, print the summary and exit.
        #[arg(long)]
        once: bool,
        /// HTTP listen address (overrides `http.listen`).
        #[arg(long)]
        listen: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct SampleArgs {
    /// Number of homes.
    #[arg(long, default_value_t = 2000)]
    homes: usize,
    /// Years of repairs history.
    #[arg(long, default_value_t = 1)]
    years: u32,
    /// Random seed: the same arguments always give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// TOML file overriding the noise rates (keys: see README, "Sample landlord").
    #[arg(long)]
    noise: Option<PathBuf>,
    /// Also write a legacy landlord of this many homes, absorbed by the sample landlord, to
    /// `<out>/acorn` in the format `config/examples/legacy-landlord.toml` maps.
    #[arg(long)]
    legacy_homes: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Process all input, print the summary and exit.
    #[arg(long)]
    once: bool,
    /// Write golden records, cross-reference, dead letters and summary.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// First day of the KPI period (default: the first appointment slot in the data).
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// Last day of the KPI period, inclusive (default: the last day with recorded activity).
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
    /// HTTP listen address (overrides `http.listen`; port 0 picks a free one).
    #[arg(long)]
    listen: Option<String>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Write golden records, decisions and KPIs to this PostgreSQL database (overrides
    /// `postgres.url`).
    #[arg(long)]
    postgres: Option<String>,
    /// After the run, write every analytics table as CSV with manifest.json (column types,
    /// the period's parameters), for another engine (sql/duckdb/compare.py).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Read no file, PostgreSQL or Debezium source: only consume the topics (and serve the
    /// API and webhooks), as one more process of the consumer group while another reads
    /// the sources. Needs a real broker and PostgreSQL (ARCHITECTURE.md, "Scaling out").
    #[arg(long, conflicts_with = "once")]
    no_sources: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KpiFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
struct KpiArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// First day of the period (default: the first appointment slot in the data).
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// Last day of the period, inclusive (default: the last day with recorded activity).
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
    /// table (with the breakdowns), csv or json.
    #[arg(long, value_enum, default_value = "table")]
    format: KpiFormat,
    /// Ask a running instance (`goldthread run`) instead of processing the sources.
    #[arg(long)]
    url: Option<String>,
    /// Also write every analytics table as CSV, with manifest.json (column types, the
    /// period's parameters), for another engine (sql/duckdb/compare.py).
    #[arg(long, conflicts_with = "url")]
    export: Option<PathBuf>,
    /// With --url: the environment variable holding the API token (viewer role or above).
    #[arg(long, default_value = "GOLDTHREAD_TOKEN")]
    token_env: String,
    /// With an `https://` --url: a PEM certificate to trust besides the system's.
    #[arg(long, env = "GOLDTHREAD_CA_FILE")]
    ca_file: Option<PathBuf>,
}

async fn kpi(args: KpiArgs) -> anyhow::Result<()> {
    let table = match args.url {
        Some(url) => {
            let connection = client::Connection::new(url, args.token_env, args.ca_file);
            client::kpis(&connection, args.from, args.to).await?
        }
        None => {
            let loaded = args.config.load()?;
            let options = run::RunOptions {
                once: true,
                out: None,
                from: args.from,
                to: args.to,
                export: args.export,
                no_sources: false,
            };
            run::run(loaded, options, None).await?.kpis
        }
    };
    match args.format {
        KpiFormat::Table => println!("{}", table.to_text(true)),
        KpiFormat::Csv => print!("{}", table.to_csv()),
        KpiFormat::Json => println!("{}", serde_json::to_string_pretty(&table)?),
    }
    Ok(())
}

fn sample_options(args: &SampleArgs) -> anyhow::Result<GenerateOptions> {
    let mut options = GenerateOptions::new(args.homes, args.years, args.seed);
    if let Some(path) = &args.noise {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        options.noise = toml::from_str::<NoiseConfig>(&text)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    }
    Ok(options)
}

fn write_sample(args: &SampleArgs, out: &std::path::Path) -> anyhow::Result<()> {
    let options = sample_options(args)?;
    let summary = generate(&options, out)?;
    eprintln!(
        "wrote a sample landlord of {} homes over {} year(s) (seed {}) to {}: {} true persons, {} properties",
        args.homes,
        args.years,
        args.seed,
        out.display(),
        summary.true_persons,
        summary.true_properties
    );
    for (file, rows) in &summary.files {
        eprintln!("  {file:<28} {rows:>9} rows");
    }
    if let Some(homes) = args.legacy_homes {
        let acorn = out.join("acorn");
        let legacy = connectors::sample::legacy::generate_legacy(out, &acorn, homes, args.seed)?;
        eprintln!(
            "wrote a legacy landlord (Acorn Homes) of {} homes and {} tenants to {}: {} tenants and {} homes known to the sample landlord, {} defects against the default standard",
            legacy.homes,
            legacy.tenants,
            acorn.display(),
            legacy.known_tenants,
            legacy.known_homes,
            legacy.defects
        );
    }
    Ok(())
}

async fn run_pipeline(args: RunArgs) -> anyhow::Result<()> {
    let mut loaded = args.config.load()?;
    if let Some(listen) = args.listen {
        loaded.config.http.listen = listen;
    }
    if let Some(url) = args.postgres {
        loaded.config.postgres.url = Some(url);
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    pipeline::metrics::describe();
    let options = run::RunOptions {
        once: args.once,
        out: args.out,
        from: args.from,
        to: args.to,
        export: args.export,
        no_sources: args.no_sources,
    };
    let summary = run::run(loaded, options, Some(metrics)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary.to_text());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_filter = match &cli.command {
        Command::Run { run } if !run.once => "info",
        Command::Demo { once: false, .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Generate { sample, out } => write_sample(&sample, &out),
        Command::Eval { eval } => eval::eval(eval),
        Command::Link { link } => link::link(link),
        Command::Train { train } => link::train(train),
        Command::Sar { sar } => runtime()?.block_on(sar::sar(sar)),
        Command::QualityReport { quality } => quality::quality_report(quality),
        Command::Kpi { kpi: args } => runtime()?.block_on(kpi(args)),
        Command::BenchKpi { bench } => runtime()?.block_on(bench::bench(bench)),
        Command::Steward {
            connection,
            command,
        } => runtime()?.block_on(client::steward(&connection, command)),
        Command::Erase {
            connection,
            subject,
            reason,
        } => runtime()?.block_on(client::erase(&connection, &subject, &reason)),
        Command::Migrate { config, postgres } => runtime()?.block_on(async {
            let loaded = config::Loaded::load(config.as_deref())?;
            let url = postgres
                .or(loaded.config.postgres.url.clone())
                .context("no PostgreSQL URL: pass --postgres or set postgres.url")?;
            let store = mdm::store::Store::connect(&url, &loaded.config.postgres).await?;
            let applied = store.migrate().await?;
            println!(
                "applied migrations: {applied:?} (of {})",
                mdm::store::MIGRATIONS.len()
            );
            Ok(())
        }),
        Command::Run { run } => runtime()?.block_on(run_pipeline(run)),
        Command::Demo {
            sample,
            dir,
            once,
            listen,
        } => {
            write_sample(&sample, &dir)?;
            let run = RunArgs {
                config: ConfigArgs {
                    config: None,
                    data_dir: Some(dir.clone()),
                },
                once,
                out: Some(dir.join("out")),
                from: None,
                to: None,
                listen,
                json: false,
                postgres: None,
                export: None,
                no_sources: false,
            };
            runtime()?.block_on(run_pipeline(run))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
