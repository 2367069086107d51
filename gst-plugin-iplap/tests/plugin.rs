//! The plugin registers statically (as the CLI, tests and examples use it) and carries its metadata.

use std::sync::Once;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstiplap::plugin_register_static().expect("static registration of the iplap plugin");
    });
}

#[test]
fn registers_statically_with_metadata() {
    init();
    let plugin = gst::Registry::get()
        .find_plugin("iplap")
        .expect("plugin `iplap` in the registry after static registration");
    assert_eq!(plugin.plugin_name(), "iplap");
    assert_eq!(plugin.license(), "Apache-2.0");
    assert!(plugin.version().starts_with(env!("CARGO_PKG_VERSION")));
    assert!(plugin.description().contains("IP_LAP"));
}
