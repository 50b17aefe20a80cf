use std::process::ExitCode;

use clap::Parser;
use keysmith::{
    cli::{Cli, Command, SimulateArgs, SimulatedProvider},
    crd, plugin, run,
    simulator::{
        self,
        clock::Clock,
        digitalocean::DigitalOceanSim,
        openai::OpenAiSim,
        openrouter::OpenRouterSim,
        validate_only::{Flavor, ValidateOnlySim},
    },
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args()
        .next()
        .is_some_and(|argv0| plugin::invoked_as_plugin(&argv0))
    {
        return match plugin::run(plugin::PluginCli::parse()).await {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {}", error_chain(&err));
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    if let Err(err) = telemetry::init(&cli.log_level, cli.log_format) {
        eprintln!("keysmith: {}", error_chain(&err));
        return ExitCode::FAILURE;
    }
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Run(args) => match run::shutdown_signal() {
            Ok(shutdown) => run::run(args, shutdown).await.map_err(Into::into),
            Err(err) => Err(err.into()),
        },
        Command::Crds => crd::crds_yaml().map(|yaml| print!("{yaml}")).map_err(Into::into),
        Command::Simulate(args) => simulate(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %error_chain(err.as_ref()), "keysmith stopped");
            ExitCode::FAILURE
        }
    }
}

async fn simulate(args: SimulateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let shutdown = run::shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let router = match args.provider {
        SimulatedProvider::Openrouter => OpenRouterSim::new([args.management_key], Clock::new()).router(),
        SimulatedProvider::Digitalocean => DigitalOceanSim::new([args.management_key], Clock::new()).router(),
        SimulatedProvider::Together => {
            ValidateOnlySim::new(Flavor::Together, [args.management_key], Clock::new()).router()
        }
        SimulatedProvider::OpenaiCompatible => {
            ValidateOnlySim::new(Flavor::OpenAiCompatible, [args.management_key], Clock::new()).router()
        }
        SimulatedProvider::Openai => OpenAiSim::new([args.management_key], Clock::new()).router(),
    };
    tracing::info!(addr = %listener.local_addr()?, provider = ?args.provider, "simulator listening");
    simulator::serve(listener, router, shutdown).await?;
    Ok(())
}

/// Renders an error with its sources, `outer: inner: root`, so one log line tells the whole story.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
