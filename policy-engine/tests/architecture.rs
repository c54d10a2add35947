//! ARCHITECTURE.md stays true: its list of the pipeline's steps is the code's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use attestgate_policy::StepId;

#[test]
fn architecture_lists_the_pipelines_steps_in_order() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ARCHITECTURE.md"))
        .unwrap();
    let section = text
        .split("## The request path")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    // Numbered items `N. `step_id`: ...`.
    let listed: Vec<String> = section
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.split_once(". `")?;
            number.trim().parse::<u32>().ok()?;
            Some(rest.split('`').next()?.to_owned())
        })
        .collect();
    let code: Vec<String> = StepId::ALL
        .iter()
        .map(|id| {
            serde_json::to_value(id)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(listed, code);
}
