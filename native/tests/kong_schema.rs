//! The Kong plugin's checked-in `schema.lua` is what the generator makes of the config model
//! (regenerate: `make kong-plugin`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_checked_in_kong_schema_is_generated_from_the_model() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kong/attestgate/schema.lua");
    let checked_in = std::fs::read_to_string(&path).unwrap();
    let generated = attestgate::kong::schema_lua(&attestgate_policy::config_schema()).unwrap();
    assert!(
        checked_in == generated,
        "{} is stale: run `make kong-plugin`",
        path.display()
    );
}
