//! Loading the registry: a bad service reports every problem at once, each
//! naming its file and field, and does not keep the good services from
//! serving.

use apinode::registry::Registry;

use crate::common::data_dir;

#[test]
fn a_bad_service_reports_every_problem_with_file_and_field() {
    let dir = data_dir();
    let registry = Registry::load(dir.path());
    let broken = registry.get("broken").expect("the broken service is listed");
    let reason = broken.start_aborted_reason.clone().expect("it did not start");
    for needle in [
        "services/broken/service.json: routingKey: \"../up\" must be",
        "mapping.entries[1].generation: no generation v9 under services/broken/generations",
        "mapping.entries: probabilities sum to 0.7, not 1",
        "mapping.entries[0].generation: generation v1 is mapped but could not be loaded",
        "services/broken/generations/v1/generation.json: endpoints[1].model: \"../../../etc/passwd\" must be a file name",
        "services/broken/generations/v1/model.json: params.coefficients: has 2 values but the features encode to 1 columns",
    ] {
        assert!(reason.contains(needle), "missing {needle:?} in\n{reason}");
    }
    for good in ["kinds", "ab", "secured"] {
        let s = registry.get(good).expect("listed");
        assert_eq!(s.start_aborted_reason, None, "{good}");
    }
    assert_eq!(registry.get("kinds").expect("kinds").generations.len(), 1);
}

#[test]
fn folders_that_are_not_service_ids_are_skipped_and_missing_files_reported() {
    let dir = data_dir();
    std::fs::create_dir_all(dir.path().join("services/has space")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("services/empty")).expect("mkdir");
    let registry = Registry::load(dir.path());
    assert!(registry.snapshot().keys().all(|k| k.as_str() != "has space"));
    let empty = registry.get("empty").expect("listed");
    let reason = empty.start_aborted_reason.clone().expect("no service.json");
    assert!(reason.contains("services/empty/service.json: cannot read"), "{reason}");
}
