//! `attestgate-corpus [--now N] [--dir DIR]`: prints the materialized corpus as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;

mod seeds;

/// Prints the request corpus with tokens minted at `--now` (default: the current time) as
/// JSON on stdout, for runners that are not written in Rust.
#[derive(Debug, Parser)]
#[command(name = "attestgate-corpus", version)]
struct Args {
    /// Unix seconds to mint the tokens at (default: now).
    #[arg(long, allow_hyphen_values = true)]
    now: Option<i64>,
    /// The case directory (default: the crate's `cases/`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Indented JSON.
    #[arg(long)]
    pretty: bool,
    /// Leave out cases whose outcome changes within this many seconds after `--now` (for
    /// runners with a moving clock); their names go to stderr.
    #[arg(long, value_name = "SECONDS")]
    stable_for: Option<i64>,
    /// Instead of printing, write fuzzing seeds from the corpus into
    /// DIR/{token,config,check,signature,route,policy_input,policy_plan} (the formats of
    /// `fuzz/src/lib.rs`).
    #[arg(long, value_name = "DIR")]
    fuzz_seeds: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let now = args.now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
            })
    });
    let dir = args.dir.unwrap_or_else(attestgate_corpus::cases_dir);
    let materialized = attestgate_corpus::load(&dir).and_then(|corpus| corpus.materialize(now));
    let materialized = match materialized {
        Ok(mut materialized) => {
            if let Some(seconds) = args.stable_for {
                match materialized.retain_stable(seconds) {
                    Ok(dropped) if !dropped.is_empty() => eprintln!(
                        "attestgate-corpus: left out (outcome changes within {seconds}s): {}",
                        dropped.join(", ")
                    ),
                    Ok(_) => {}
                    Err(err) => {
                        eprintln!("attestgate-corpus: {err}");
                        return ExitCode::from(2);
                    }
                }
            }
            materialized
        }
        Err(err) => {
            eprintln!("attestgate-corpus: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &args.fuzz_seeds {
        return match seeds::write(&materialized, dir) {
            Ok(count) => {
                eprintln!("attestgate-corpus: {count} seeds in {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("attestgate-corpus: {}: {err}", dir.display());
                ExitCode::from(2)
            }
        };
    }
    let json = if args.pretty {
        serde_json::to_string_pretty(&materialized)
    } else {
        serde_json::to_string(&materialized)
    };
    match json {
        Ok(json) => {
            // A closed pipe (`| head`) is an error exit, not a panic.
            use std::io::Write as _;
            match writeln!(std::io::stdout().lock(), "{json}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("attestgate-corpus: writing to stdout: {err}");
                    ExitCode::from(2)
                }
            }
        }
        Err(err) => {
            eprintln!("attestgate-corpus: {err}");
            ExitCode::from(2)
        }
    }
}
