//! Compiled filters cached on disk, so every CLI run and test binary after the first skips
//! cranelift (seconds for a 2 MB filter in a debug build) and loads the module in
//! milliseconds.
//!
//! An entry is named by the SHA-256 of the `.wasm` and of the compiled artifact; the second
//! is checked before wasmtime sees the bytes, so a truncated or corrupted entry is recompiled,
//! never loaded. wasmtime itself refuses an artifact from another version or engine config.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// `ATTESTGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/attestgate`, else `~/.cache/attestgate`.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ATTESTGATE_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("attestgate"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles `wasm`, or loads the artifact a previous compile left in the cache.
pub(crate) fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Module> {
    let Some(dir) = cache_dir() else {
        return Module::new(engine, wasm);
    };
    let key = hex(&Sha256::digest(wasm));
    if let Some(module) = load(engine, &dir, &key) {
        return Ok(module);
    }
    let module = Module::new(engine, wasm)?;
    // A cache that cannot be written only costs the next run a compile.
    let _ = store(&dir, &key, &module);
    Ok(module)
}

fn load(engine: &Engine, dir: &Path, key: &str) -> Option<Module> {
    let prefix = format!("{key}-");
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(digest) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".cwasm"))
        else {
            continue;
        };
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        if hex(&Sha256::digest(&bytes)) != digest {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        // SAFETY: these bytes are exactly what `Module::serialize` wrote for this very wasm
        // (checked by digest above) in the user's own cache directory, and wasmtime refuses
        // artifacts from another version or an incompatible engine configuration.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize(engine, &bytes) };
        match module {
            Ok(module) => return Some(module),
            // Another wasmtime version or engine config: recompile, and drop the stale entry.
            Err(_) => {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    None
}

fn store(dir: &Path, key: &str, module: &Module) -> Option<()> {
    let bytes = module.serialize().ok()?;
    std::fs::create_dir_all(dir).ok()?;
    let name = format!("{key}-{}.cwasm", hex(&Sha256::digest(&bytes)));
    // Written aside and renamed, so parallel tests never read half a file.
    let temporary = dir.join(format!("{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, &bytes).ok()?;
    std::fs::rename(&temporary, dir.join(name)).ok()
}
