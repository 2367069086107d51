//! ONNX Runtime is found and loaded the way users get it: from the link `scripts/setup.sh` makes,
//! with no variable exported (`ORT_DYLIB_PATH` still overrides when set).

#[test]
fn onnx_runtime_loads_without_configuration() {
    let lib = iplap::runtime::init().unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh first)"));
    assert!(lib.path.is_file(), "{}", lib.path.display());
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        assert_ne!(lib.source, iplap::runtime::LibrarySource::Environment);
    }
    // A second call reuses the first initialisation.
    assert_eq!(iplap::runtime::init().unwrap(), lib);
}
