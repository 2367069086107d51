//! Stages (c) and (d) of a frame: the flow head over the references in chunks and the warp of
//! each chunk into the running sums, on the GPU (flows and weights stay on the device, our warp
//! kernel sums) or with the CPU warp (each chunk's flows and weights come to the host).

use std::time::Instant;

use ndarray::{Array4, Axis, s};

use super::{RendererError, RendererModel, RendererTimings, SpadeMaps, chunks};
use crate::runtime::BorrowedTensor;
use crate::warp::{WarpChunk, WarpOutput};

impl RendererModel {
    /// Stages (c) and (d) on the GPU, when the bank's h2 is resident per chunk and the warp
    /// kernels loaded: the averages, in the warp's device buffers (valid until the next frame).
    /// `None`: not on this renderer ([`Self::warp_on_host`] then).
    pub(super) fn warp_on_device(
        &mut self,
        maps: &SpadeMaps,
    ) -> Result<Option<[BorrowedTensor; 3]>, RendererError> {
        let bank = self.bank.as_ref().ok_or(RendererError::NoReferenceBank)?;
        let n = bank.ref_img.len_of(Axis(0));
        let resident = bank.resident_h2.len() == chunks(n, self.config.chunk).count();
        let Some(warp) = self.device_warp.as_mut().filter(|_| resident) else {
            return Ok(None);
        };
        warp.reset()?;
        let mut alive = Vec::new();
        for (i, range) in chunks(n, self.config.chunk).enumerate() {
            let (flow, weight) = self.flow_head.run_on_device(&bank.resident_h2[i], maps)?;
            warp.add(range, &flow, &weight, &bank.resident_h2[i])?;
            alive.push((flow, weight));
        }
        // `finish` waits for the warp, which read the flows and weights: they may go after it.
        let averages = warp.finish()?;
        drop(alive);
        Ok(Some(averages))
    }

    /// Stages (c) and (d) with the CPU warp: each chunk's flows and weights come to the host (and
    /// into `kept`, when given, `(N, 2, …)` and `(N, 1, …)`).
    pub(super) fn warp_on_host(
        &mut self,
        maps: &SpadeMaps,
        timings: &mut RendererTimings,
        mut kept: Option<&mut (Array4<f32>, Array4<f32>)>,
    ) -> Result<WarpOutput, RendererError> {
        let bank = self.bank.as_ref().ok_or(RendererError::NoReferenceBank)?;
        let n = bank.ref_img.len_of(Axis(0));
        self.warp.reset();
        for (i, (a, b)) in chunks(n, self.config.chunk).enumerate() {
            let range = s![a..b, .., .., ..];
            let t = Instant::now();
            let head = match bank.resident_h2.get(i) {
                Some(h2) => self.flow_head.run_resident(h2, maps)?,
                None => self.flow_head.run(bank.features.h2.slice(range), maps)?,
            };
            timings.flow_head += t.elapsed();
            let t = Instant::now();
            self.warp.add(&WarpChunk {
                flow: head.flow.view(),
                weight: head.weight.view(),
                h1: bank.features.h1.slice(range),
                h2: bank.features.h2.slice(range),
                ref_img: bank.ref_img.slice(range),
            })?;
            timings.warp += t.elapsed();
            if let Some((flow, weight)) = kept.as_deref_mut() {
                flow.slice_mut(range).assign(&head.flow);
                weight.slice_mut(range).assign(&head.weight);
            }
        }
        let t = Instant::now();
        let avg = self.warp.finish()?;
        timings.warp += t.elapsed();
        Ok(avg)
    }
}
