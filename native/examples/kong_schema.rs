//! Prints the Kong plugin's `schema.lua`, generated from the config model (`make kong-plugin`).
use std::process::ExitCode;

fn main() -> ExitCode {
    match attestgate::kong::schema_lua(&attestgate_policy::config_schema()) {
        Ok(lua) => {
            print!("{lua}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("kong_schema: {err}");
            ExitCode::FAILURE
        }
    }
}
