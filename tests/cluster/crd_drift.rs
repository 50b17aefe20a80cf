//! `crds/` must hold exactly what the code generates: the YAML users apply and the types the
//! controller reads can never drift apart unnoticed.

#[test]
fn committed_crds_match_the_generated_ones() {
    let generated = keysmith_api::crds_yaml().unwrap();
    // The chart ships its own copy: Helm installs CRDs only from the chart's crds/ directory.
    for path in ["crds/keysmith.dev.yaml", "charts/keysmith/crds/keysmith.dev.yaml"] {
        let committed = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(
            committed == generated,
            "{path} is stale: run `make crds` and commit the result"
        );
    }
}

#[test]
fn every_spec_field_has_a_description_for_kubectl_explain() {
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let here = format!("{path}.{name}");
                if sub
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_none_or(str::is_empty)
                {
                    missing.push(here.clone());
                }
                walk(&here, sub, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    for crd in keysmith_api::all_crds() {
        let crd = serde_json::to_value(&crd).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        for part in ["spec", "status"] {
            walk(
                &format!("{}.{part}", crd["spec"]["names"]["kind"].as_str().unwrap()),
                &schema["properties"][part],
                &mut missing,
            );
        }
    }
    assert!(missing.is_empty(), "fields without a description: {missing:#?}");
}
