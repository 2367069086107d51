//! `ai.iplap.WinogradConv3x3`: the ONNX Runtime custom operator that runs [`crate::winograd`] inside
//! a session, so a graph keeps its structure and only its big 3×3 convolutions change kernel.
//!
//! Inputs: `X (N, C, H, W)`, `U (16, K, C)` (the transformed weights, an initializer written by
//! [`crate::graph`]), `B (K)`; output `Y (N, K, H, W)`. Images are spread over the session's
//! intra-op thread pool (`par_for`), each thread reusing its own scratch.

use std::cell::RefCell;

use ort::operator::{
    BoxedKernel, ComputeContext, KernelContext, Operator, OperatorDomain, OperatorInput,
    OperatorOutput,
};
use ort::value::TensorElementType;

use crate::winograd::{ConvShape, Scratch, conv3x3_outputs};

/// Domain of iplap's custom operators.
pub const DOMAIN: &str = "ai.iplap";
/// Name of the operator.
pub const OP: &str = "WinogradConv3x3";

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

struct WinogradConv3x3;

fn error(message: impl Into<String>) -> ort::Error {
    ort::Error::new(format!("{DOMAIN}.{OP}: {}", message.into()))
}

fn compute(ctx: &ComputeContext) -> ort::Result<()> {
    let input = |i: usize| -> ort::Result<_> {
        ctx.input(i)?
            .ok_or_else(|| error(format!("input {i} missing")))
    };
    let (x, u, b) = (input(0)?, input(1)?, input(2)?);
    let (x_shape, x) = x.try_extract_tensor::<f32>()?;
    let (u_shape, u) = u.try_extract_tensor::<f32>()?;
    let (_, b) = b.try_extract_tensor::<f32>()?;
    let dims: Vec<usize> = x_shape.iter().map(|&d| d.max(0) as usize).collect();
    let [n, c, h, w] = dims[..] else {
        return Err(error(format!("X must have rank 4, got {:?}", &x_shape[..])));
    };
    let k = match u_shape[..] {
        [16, k, uc] if uc.max(0) as usize == c => k.max(0) as usize,
        _ => {
            return Err(error(format!(
                "U {:?} does not fit X {dims:?}",
                &u_shape[..]
            )));
        }
    };
    let shape = ConvShape { c, k, h, w };
    let mut y = ctx
        .output(0, vec![n as i64, k as i64, h as i64, w as i64])?
        .ok_or_else(|| error("output missing"))?;
    let (_, y) = y.try_extract_tensor_mut::<f32>()?;
    let (x_len, y_len) = (c * h * w, k * h * w);
    if x.len() != n * x_len || y.len() != n * y_len {
        return Err(error("tensor sizes do not match their shapes"));
    }
    // Work units: whole images, except that an odd count gives its last image to two units (one
    // per half of the output channels), so two threads stay busy on chunks of 1, 3, 5, … images.
    // Each unit writes its own disjoint output range; the pointer crosses threads as an address.
    let y_addr = y.as_mut_ptr() as usize;
    let whole = n - n % 2;
    let units = whole + 2 * (n % 2);
    let failure = std::sync::Mutex::new(None);
    ctx.par_for(units, units, |unit| {
        let (i, ks) = match unit.checked_sub(whole) {
            None => (unit, 0..k),
            Some(0) => (whole, 0..k / 2),
            Some(_) => (whole, k / 2..k),
        };
        // SAFETY: `i < n`, so the image's range lies inside `y`; units of different images never
        // overlap, and the two halves of the last image only write their own output planes.
        let out =
            unsafe { std::slice::from_raw_parts_mut((y_addr as *mut f32).add(i * y_len), y_len) };
        let result = SCRATCH.with(|s| {
            let x = &x[i * x_len..][..x_len];
            conv3x3_outputs(x, u, b, out, shape, ks, &mut s.borrow_mut())
        });
        if let Err(e) = result {
            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    })?;
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(error(e.to_string())),
        None => Ok(()),
    }
}

impl Operator for WinogradConv3x3 {
    type Kernel<'attr> = BoxedKernel<'attr>;

    fn name(&self) -> &str {
        OP
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        (0..3).map(|_| OperatorInput::required(TensorElementType::Float32))
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<Self::Kernel<'attr>> {
        Ok(Box::new(compute))
    }
}

/// The `ai.iplap` operator domain, registered with the sessions of graphs that import it.
pub fn domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?.add(WinogradConv3x3)
}
