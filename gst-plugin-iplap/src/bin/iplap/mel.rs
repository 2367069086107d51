//! `iplap mel` (being written).
#[derive(clap::Args)]
pub struct MelArgs {}
pub fn run(_args: MelArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
