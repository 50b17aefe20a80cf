use std::process::ExitCode;

use clap::Parser;
use keysmith::{
    cli::{Cli, Command},
    plugin, run, telemetry,
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
            Ok(shutdown) => run::run(*args, shutdown).await.map_err(Into::into),
            Err(err) => Err(err.into()),
        },
        Command::Crds => keysmith_api::crds_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %error_chain(err.as_ref()), "keysmith stopped");
            ExitCode::FAILURE
        }
    }
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
