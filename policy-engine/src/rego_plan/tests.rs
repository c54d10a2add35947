//! Each construct the plan covers, decided by the plan and by regorus' interpreter on inputs
//! that take each of its branches; and what it refuses, with the line it names.

use serde_json::{json, Value};

use crate::{Policy, PolicyConfig, PolicyEngine};

fn policy(source: &str, data: Value) -> Policy {
    let config: PolicyConfig = serde_json::from_value(json!({
        "modules": { "p.rego": format!("package attestgate\nimport rego.v1\n{source}") },
        "data": data,
    }))
    .unwrap();
    Policy::compile(&config, []).unwrap()
}

/// The plan exists, and decides each input as the interpreter does; returns the plan's
/// documents.
fn alike(source: &str, data: Value, inputs: &[Value]) -> Vec<Result<Option<Value>, String>> {
    let policy = policy(source, data);
    let entry = "data.attestgate.decision";
    assert_eq!(policy.interpreted_because(entry), None, "{source}");
    inputs
        .iter()
        .map(|input| {
            let plan = policy.evaluate_document(PolicyEngine::Plan, entry, input.clone());
            let interpreted =
                policy.evaluate_document(PolicyEngine::Interpreter, entry, input.clone());
            match (&plan, &interpreted) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{source}\ninput {input}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{source}\ninput {input}\nplan {plan:?}\ninterpreter {interpreted:?}"),
            }
            plan
        })
        .collect()
}

fn values(results: Vec<Result<Option<Value>, String>>) -> Vec<Value> {
    results
        .into_iter()
        .map(|r| r.unwrap().unwrap_or(Value::Null))
        .collect()
}

#[test]
fn else_chains_and_defaults() {
    let source = r#"
default decision := "none"
decision := "big" if { input.n > 10 } else := "small" if { input.n > 0 } else := "zero" if input.n == 0
"#;
    let got = values(alike(
        source,
        json!({}),
        &[
            json!({"n": 11}),
            json!({"n": 3}),
            json!({"n": 0}),
            json!({"n": -1}),
            json!({}),
        ],
    ));
    assert_eq!(
        got,
        [
            json!("big"),
            json!("small"),
            json!("zero"),
            json!("none"),
            json!("none")
        ]
    );
}

#[test]
fn partial_sets_and_objects() {
    let source = r#"
deny contains "a" if input.a
deny contains x if { some x in input.list; x != "skip" }
count_by[k] := v if { some k, v in input.counts; v > 1 }
decision := {"deny": deny, "counts": count_by}
"#;
    let results = alike(
        source,
        json!({}),
        &[
            json!({"a": true, "list": ["x", "skip", "y"], "counts": {"p": 1, "q": 2}}),
            json!({"list": [], "counts": {}}),
            json!({"list": "not a list"}),
        ],
    );
    assert_eq!(
        results[0],
        Ok(Some(json!({"deny": ["a", "x", "y"], "counts": {"q": 2}})))
    );
    assert_eq!(results[1], Ok(Some(json!({"deny": [], "counts": {}}))));
    // `some … in` over a string is an error, in regorus and so in the plan.
    assert!(results[2].is_err());
}

#[test]
fn conflicting_outputs_are_errors_in_both() {
    let complete = "decision := x if { some x in input.xs }";
    let results = alike(
        complete,
        json!({}),
        &[json!({"xs": [1, 1]}), json!({"xs": [1, 2]})],
    );
    assert_eq!(results[0], Ok(Some(json!(1))));
    assert!(results[1].is_err());
    let object = "p[k] := v if { some v in input.vs; k := \"k\" }\ndecision := p";
    let results = alike(object, json!({}), &[json!({"vs": [1, 2]})]);
    assert!(results[0].is_err());
}

#[test]
fn functions_with_several_definitions_and_else() {
    let source = r#"
kind(x) := "string" if is_string(x)
kind(x) := "number" if is_number(x)
size(x) := count(x) if { is_array(x) } else := 0
first([a, _]) := a
decision := [kind(input.v), size(input.v), first(input.pair)]
"#;
    let got = values(alike(
        source,
        json!({}),
        &[
            json!({"v": "s", "pair": [1, 2]}),
            json!({"v": 3, "pair": [1]}),
            json!({"v": [1, 2, 3], "pair": [4, 5]}),
        ],
    ));
    assert_eq!(got[0], json!(["string", 0, 1]));
    // kind(array) and first([1]) are undefined, so the whole array is.
    assert_eq!(got[1], Value::Null);
}

#[test]
fn every_not_and_comprehensions() {
    let source = r#"
default all_small := false
all_small if every x in input.xs { x < 10 }
default not_big := false
decision := {
    "all_small": all_small,
    "none_big": not_big,
    "doubled": [y | some x in input.xs; y := x * 2],
    "set": {y | some x in input.xs; y := x % 3},
    "index": {k: v | some k, v in input.xs; v > 1},
}
not_big if not big
big if {
    some x in input.xs
    x > 100
}
"#;
    let got = values(alike(
        source,
        json!({}),
        &[
            json!({"xs": [1, 2, 3]}),
            json!({"xs": [1, 200]}),
            json!({"xs": []}),
        ],
    ));
    assert_eq!(got[0]["doubled"], json!([2, 4, 6]));
    assert_eq!(got[0]["set"], json!([0, 1, 2]));
    assert_eq!(
        (&got[1]["all_small"], &got[1]["none_big"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(
        (&got[2]["all_small"], &got[2]["none_big"]),
        (&json!(true), &json!(true))
    );
}

#[test]
fn unification_and_destructuring() {
    let source = r#"
decision := [y, m, first] if {
    [y, m, _] := split(input.date, "-")
    some x
    x = input.pair[0]
    {"first": first} = {"first": x}
}
"#;
    let got = values(alike(
        source,
        json!({}),
        &[
            json!({"date": "2024-05-06", "pair": [7]}),
            json!({"date": "2024-05"}),
        ],
    ));
    assert_eq!(got[0], json!(["2024", "05", 7]));
    assert_eq!(got[1], Value::Null);
}

#[test]
fn operators_and_the_order_of_values() {
    let source = r#"
decision := {
    "arith": [input.a + input.b, input.a - input.b, input.a * input.b, input.a / input.b, input.a % input.b, -1],
    "sets": [input.s | {3}, input.s & {1, 3}, input.s - {1}],
    "order": [[1, 2] < [1, 3], {"a": 1} == {"a": 1}, {1} < {2}, null < false, "b" > "a"],
    "member": [2 in input.s, "k", 1 in {"k": 1}, 0, "x" in [1]],
}
"#;
    alike(
        source,
        json!({}),
        &[
            json!({"a": 7, "b": 2, "s": [1, 2]}),
            json!({"a": 7, "b": 0, "s": [1]}),
            json!({"a": "x", "b": 1}),
        ],
    );
}

#[test]
fn data_is_read_at_load_and_rules_on_it_fold() {
    let source = r#"
limit := object.get(data.settings, "limit", 5)
decision := input.n <= limit
"#;
    let got = values(alike(
        source,
        json!({"settings": {"limit": 3}}),
        &[json!({"n": 3}), json!({"n": 4})],
    ));
    assert_eq!(got, [json!(true), json!(false)]);
}

#[test]
fn imports_resolve_to_input_and_data() {
    let source = r#"
import input.token.claims as claims
import data.settings
decision := claims.did in settings.devices
"#;
    let got = values(alike(
        source,
        json!({"settings": {"devices": ["d1"]}}),
        &[
            json!({"token": {"claims": {"did": "d1"}}}),
            json!({"token": {"claims": {"did": "d2"}}}),
        ],
    ));
    assert_eq!(got, [json!(true), json!(false)]);
}

#[test]
fn builtin_errors_are_errors_on_both_paths() {
    let source = "decision := object.get(input.x, \"a\", 1)";
    let results = alike(
        source,
        json!({}),
        &[json!({"x": {"a": 2}}), json!({"x": "not an object"})],
    );
    assert_eq!(results[0], Ok(Some(json!(2))));
    assert!(results[1].is_err());
}

#[test]
fn regex_literals_and_computed_patterns_agree() {
    let source = r#"
decision := [regex.match(`^[a-z]+$`, input.s), regex.match(input.p, input.s),
             regex.find_all_string_submatch_n(`([0-9]+)`, input.s, -1)]
"#;
    let results = alike(
        source,
        json!({}),
        &[
            json!({"s": "abc", "p": "b"}),
            json!({"s": "a1b22", "p": "("}),
            json!({"s": "x", "p": "x"}),
        ],
    );
    assert!(
        results[1].is_err(),
        "an invalid computed pattern is an error"
    );
}

#[test]
fn what_the_plan_does_not_take_is_named_with_its_line() {
    for (source, line, what) in [
        ("decision := print(1)", 3, "`print`"),
        ("decision := x if { x := input.xs[_] }", 3, "`_`"),
        ("decision := time.now_ns()", 3, "`time.now_ns`"),
        ("a.b := 1\ndecision := a.b", 4, "does not plan"),
        // OPA refuses two defaults for one rule; regorus keeps the first (fuzz finding 7).
        (
            "default decision := 1\ndefault decision := 2",
            4,
            "a second `default` for `data.attestgate.decision`",
        ),
        (
            "decision := y if {\n  y := x + 1\n  x = 1\n}",
            4,
            "`x` is not bound",
        ),
    ] {
        let policy = policy(source, json!({}));
        let why = policy
            .interpreted_because("data.attestgate.decision")
            .unwrap_or_else(|| panic!("{source} was planned"));
        assert_eq!(why.file, "p.rego", "{source}");
        assert_eq!(why.line, line, "{source}: {why}");
        assert!(why.what.contains(what), "{source}: {why}");
    }
}

#[test]
fn a_second_default_keeps_the_interpreters_answer() {
    // Fuzz finding 7: the plan took the last default, regorus the first (or its error).
    let policy = policy(
        "default decision := 88888888888888888888888888888888888888888888\n\
         default decision := 888888888888888888888888888",
        json!({}),
    );
    let decide = |engine| policy.evaluate_document(engine, "data.attestgate.decision", json!({}));
    assert_eq!(
        decide(PolicyEngine::Default),
        decide(PolicyEngine::Interpreter)
    );
    let first = decide(PolicyEngine::Default).unwrap().unwrap();
    assert!(first.as_f64().is_some_and(|n| n > 1e40), "{first}");
}

#[test]
fn a_query_too_long_to_run_nested_keeps_the_interpreter() {
    let body: Vec<String> = (0..300).map(|i| format!("  input.n > {i}")).collect();
    let policy = policy(
        &format!("decision if {{\n{}\n}}", body.join("\n")),
        json!({}),
    );
    let why = policy
        .interpreted_because("data.attestgate.decision")
        .unwrap();
    assert!(why.what.contains("more than 256 statements"), "{why}");
    let decide = |n: i64| {
        policy.evaluate_document(
            PolicyEngine::Default,
            "data.attestgate.decision",
            json!({"n": n}),
        )
    };
    assert_eq!((decide(300), decide(3)), (Ok(Some(json!(true))), Ok(None)));
}

#[test]
fn test_rules_run_with_replaced_input_and_data_on_both_paths() {
    let modules = [(
        "t.rego".to_owned(),
        "package t\nimport rego.v1\n\
         allowed if input.n <= data.limits.n\n\
         test_under if allowed with input as {\"n\": 1} with data.limits as {\"n\": 2}\n\
         test_over if not allowed with input as {\"n\": 3} with data.limits as {\"n\": 2}\n\
         test_wrong if allowed with input as {\"n\": 3} with data.limits as {\"n\": 2}\n"
            .to_owned(),
    )];
    let results = crate::run_rego_tests(&modules).unwrap();
    let outcome: Vec<_> = results
        .iter()
        .map(|t| (t.name.as_str(), t.passed, t.interpreted_only.is_none()))
        .collect();
    assert_eq!(
        outcome,
        [
            ("data.t.test_under", true, true),
            ("data.t.test_over", true, true),
            ("data.t.test_wrong", false, true)
        ]
    );
}
