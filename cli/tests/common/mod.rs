//! What the CLI's tests that run the built filter share: where it is (the harness's one
//! locator, `attestgate_harness::built_filter`).

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(clippy::panic, dead_code)]

use std::path::PathBuf;

/// The built filter; missing it is a failure, never a skip.
pub fn filter_path() -> PathBuf {
    attestgate_harness::built_filter().unwrap_or_else(|| {
        panic!(
            "no built filter at {}: run `make filter`",
            std::env::var("ATTESTGATE_WASM").unwrap_or_else(|_| "build/attestgate.wasm".into())
        )
    })
}

/// The interpreter for `scripts/interop/rfc9421.py` (PyPI `http-message-signatures`):
/// `$ATTESTGATE_PYTHON`, else `.venv/bin/python` at the repository root (`make envoy`
/// installs the package there), else `python3`.
pub fn interop_python() -> PathBuf {
    if let Some(python) = std::env::var_os("ATTESTGATE_PYTHON") {
        return python.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// What the App Check tests need installed for [`interop_python`]
/// (`scripts/install-envoy.sh` installs it into `.venv/`).
pub const PYJWT_REQUIREMENT: &str = "PyJWT[crypto]==2.10.1";

fn app_check_script(args: &[&str]) -> std::process::Output {
    let python = interop_python();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::process::Command::new(&python)
        .arg(root.join("scripts/interop/app_check.py"))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {} ({err}): the App Check tests need Python 3 with `pip install \
                 '{PYJWT_REQUIREMENT}'` (scripts/install-envoy.sh installs it into .venv); set \
                 ATTESTGATE_PYTHON",
                python.display()
            )
        })
}

/// A Firebase App Check token minted by PyJWT (`scripts/interop/app_check.py mint`) in App
/// Check's shape for project 123456789012 (`my-project-id`): `app_id` as `sub`, signed with
/// `policy-engine/tests/data/keys/<key_file>`; `extra` are more of the script's flags
/// (`--iss`, `--aud`, `--kid`). PyJWT missing, or another version, is a failure.
pub fn app_check_token(key_file: &str, app_id: &str, iat: i64, exp: i64, extra: &[&str]) -> String {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let out = app_check_script(&["version"]);
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success() && said == "PyJWT 2.10.1",
            "the App Check tests need PyJWT 2.10.1 for {python}: `{python} -m pip install \
             '{PYJWT_REQUIREMENT}'` (or set ATTESTGATE_PYTHON). It said: {said} {}",
            String::from_utf8_lossy(&out.stderr),
            python = interop_python().display(),
        );
    });
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy-engine/tests/data/keys")
        .join(key_file);
    let (iat, exp) = (iat.to_string(), exp.to_string());
    let mut args = vec![
        "mint",
        "--key",
        key.to_str().unwrap_or_default(),
        "--project-number",
        "123456789012",
        "--project-id",
        "my-project-id",
        "--app-id",
        app_id,
        "--iat",
        &iat,
        "--exp",
        &exp,
    ];
    args.extend_from_slice(extra);
    let out = app_check_script(&args);
    assert!(
        out.status.success(),
        "app_check.py {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
