//! Running a [`ModelSession`]: host inputs through a plain run, inputs resident on the session's
//! device through ONNX Runtime's I/O binding, and memory our kernels own read in place.

use ort::value::TensorRef;

use super::{ModelSession, SessionError};
use crate::graph::onnx::{Dim, TensorSpec};
use crate::runtime::tensor::{DeviceTensor, Placement};

impl ModelSession {
    /// Runs with float32 inputs given by name (every contract input, data row-major in the
    /// contract's shape) and returns the requested outputs' data in the order asked.
    pub fn run_f32(
        &mut self,
        inputs: &[(&str, &[f32])],
        outputs: &[&str],
    ) -> Result<Vec<Vec<f32>>, SessionError> {
        self.run_f32_dims(&[], inputs, outputs)
    }

    /// [`Self::run_f32`] for a contract with symbolic dimensions: `dims` gives each one's size for
    /// this run (e.g. `[("n", 3)]`), so one session serves every batch size.
    pub fn run_f32_dims(
        &mut self,
        dims: &[(&str, usize)],
        inputs: &[(&str, &[f32])],
        outputs: &[&str],
    ) -> Result<Vec<Vec<f32>>, SessionError> {
        self.run_f32_borrowed(dims, inputs, &[], outputs)
    }

    /// Runs on host inputs and on memory we own on the session's device (our kernels' outputs),
    /// which ONNX Runtime reads in place, with symbolic dimensions sized by `dims`; the outputs
    /// come to the host. A plain run, not I/O
    /// binding: `ort` clones borrowed memory it is asked to bind, to rule out aliasing.
    pub fn run_f32_borrowed(
        &mut self,
        dims: &[(&str, usize)],
        host: &[(&str, &[f32])],
        borrowed: &[(&str, &BorrowedTensor)],
        outputs: &[&str],
    ) -> Result<Vec<Vec<f32>>, SessionError> {
        let inputs = self.plain_inputs(dims, host, borrowed)?;
        let fail = self.failure();
        let result = self.session.run(inputs).map_err(|e| fail(e.to_string()))?;
        outputs
            .iter()
            .map(|name| {
                let v = result
                    .get(name)
                    .ok_or_else(|| fail(format!("no output `{name}`")))?;
                let (_, data) = v
                    .try_extract_tensor::<f32>()
                    .map_err(|e| fail(format!("output `{name}`: {e}")))?;
                Ok(data.to_vec())
            })
            .collect()
    }

    /// [`Self::run_f32_borrowed`] with the outputs written into `outputs`' tensors, which stay
    /// where they were made (the session's GPU): a stage fed by our kernels whose results feed
    /// the next stage or our kernels, with nothing crossing the bus. Returns the outputs in
    /// `outputs`' order; they share memory with `outputs`, which the next run overwrites.
    pub fn run_borrowed_into(
        &mut self,
        dims: &[(&str, usize)],
        host: &[(&str, &[f32])],
        borrowed: &[(&str, &BorrowedTensor)],
        outputs: &OutputBuffers,
    ) -> Result<Vec<DeviceTensor>, SessionError> {
        let inputs = self.plain_inputs(dims, host, borrowed)?;
        let fail = self.failure();
        let options = outputs.options.lock().unwrap_or_else(|p| p.into_inner());
        let mut result = self
            .session
            .run_with_options(inputs, &options)
            .map_err(|e| fail(e.to_string()))?;
        outputs
            .names
            .iter()
            .map(|name| take_output(&mut result, name, &fail))
            .collect()
    }

    fn failure(&self) -> impl Fn(String) -> SessionError + use<> {
        let model = self.model.clone();
        move |message| SessionError::Run {
            model: model.clone(),
            message,
        }
    }

    /// The inputs of a plain run: `host` data by reference, `borrowed` device memory in place.
    /// Every contract input must be given.
    fn plain_inputs<'v>(
        &self,
        dims: &[(&str, usize)],
        host: &[(&str, &'v [f32])],
        borrowed: &[(&str, &BorrowedTensor)],
    ) -> Result<PlainInputs<'v>, SessionError> {
        let fail = self.failure();
        let mut run_inputs: PlainInputs<'v> = Vec::with_capacity(self.inputs.len());
        for spec in &self.inputs {
            let name = spec.name.as_str();
            let value = if let Some((_, data)) = host.iter().find(|(n, _)| *n == name) {
                let shape = self.host_input_shape(spec, dims, data.len())?;
                TensorRef::from_array_view((shape, *data))
                    .map_err(|e| fail(e.to_string()))?
                    .into()
            } else if let Some((_, t)) = borrowed.iter().find(|(n, _)| *n == name) {
                let shape = self.concrete_shape(spec, dims)?;
                let same = t.shape.len() == shape.len()
                    && t.shape.iter().zip(&shape).all(|(&a, &b)| a as i64 == b);
                if !same || t.address == 0 {
                    return Err(fail(format!(
                        "input `{name}` has shape {:?}, expected {shape:?}",
                        t.shape
                    )));
                }
                let info = t.placement.memory_info().map_err(|e| fail(e.to_string()))?;
                // SAFETY: `BorrowedTensor::new`'s contract: the memory holds the shape's values
                // where `info` says and outlives the run, which returns before the caller can
                // release it (the value is dropped with the run's inputs).
                let view = unsafe {
                    ort::value::TensorRefMut::<f32>::from_raw(
                        info,
                        t.address as *mut std::ffi::c_void,
                        ort::value::Shape::new(shape),
                    )
                }
                .map_err(|e| fail(e.to_string()))?;
                ort::session::SessionInputValue::from(view)
            } else {
                return Err(fail(format!("input `{name}` not given")));
            };
            run_inputs.push((spec.name.clone().into(), value));
        }
        Ok(run_inputs)
    }
}

/// Output `name` of a run, where the run left it.
fn take_output(
    result: &mut ort::session::SessionOutputs<'_>,
    name: &str,
    fail: &impl Fn(String) -> SessionError,
) -> Result<DeviceTensor, SessionError> {
    let value = result
        .remove(name)
        .ok_or_else(|| fail(format!("no output `{name}`")))?;
    let tensor = value
        .downcast::<ort::value::DynTensorValueType>()
        .map_err(|e| fail(format!("output `{name}`: {e}")))?;
    Ok(DeviceTensor::from_value(tensor))
}

type PlainInputs<'v> = Vec<(
    std::borrow::Cow<'static, str>,
    ort::session::SessionInputValue<'v>,
)>;

/// Output tensors a session writes into at every [`ModelSession::run_borrowed_into`]: allocated
/// once by ONNX Runtime in a placement (the session's GPU), so the outputs stay there.
pub struct OutputBuffers {
    names: Vec<String>,
    /// Behind a mutex only to be `Sync` (`ort` does not mark options with outputs so); the
    /// runs that use it take the session mutably anyway.
    options: std::sync::Mutex<ort::session::RunOptions<ort::session::HasSelectedOutputs>>,
}

impl OutputBuffers {
    /// One float32 tensor per `(name, shape)`, zeroed, in `placement`.
    pub fn new(outputs: &[(&str, &[usize])], placement: Placement) -> ort::Result<Self> {
        let mut selector = ort::session::OutputSelector::no_default();
        for (name, shape) in outputs {
            let zeros = vec![0f32; shape.iter().product()];
            let tensor = DeviceTensor::upload(&zeros, shape, placement)?;
            selector = selector.with(*name).preallocate(*name, tensor.into_value());
        }
        Ok(OutputBuffers {
            names: outputs.iter().map(|(n, _)| n.to_string()).collect(),
            options: std::sync::Mutex::new(ort::session::RunOptions::new()?.with_outputs(selector)),
        })
    }

    /// The output names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl std::fmt::Debug for OutputBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputBuffers")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// One input of [`ModelSession::run_bound`].
#[derive(Clone, Copy, Debug)]
pub enum BoundInput<'a> {
    /// Row-major host data in the contract's shape (copied to the session's device by the run).
    Host(&'a [f32]),
    /// A tensor already where it is needed (shape checked against the contract).
    Resident(&'a DeviceTensor),
}

/// A float32 tensor in device memory that ONNX Runtime does not own (a cudarc buffer our kernels
/// wrote), described for binding as a session input without a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BorrowedTensor {
    address: u64,
    shape: Vec<usize>,
    placement: Placement,
}

impl BorrowedTensor {
    /// # Safety
    ///
    /// `address` must be valid for `shape`'s product of f32 values in `placement`'s memory, hold
    /// the data by the time the session's stream runs, and stay allocated and unwritten by other
    /// streams until every run it is bound to has returned.
    pub unsafe fn new(address: u64, shape: &[usize], placement: Placement) -> Self {
        BorrowedTensor {
            address,
            shape: shape.to_vec(),
            placement,
        }
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl ModelSession {
    /// The contract shape of `spec` with its symbolic dimensions sized by `dims`.
    fn concrete_shape(
        &self,
        spec: &TensorSpec,
        dims: &[(&str, usize)],
    ) -> Result<Vec<i64>, SessionError> {
        spec.shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Ok(*n as i64),
                Dim::Symbolic(s) => dims
                    .iter()
                    .find(|(name, _)| name == s)
                    .map(|&(_, n)| n as i64)
                    .ok_or_else(|| SessionError::Run {
                        model: self.model.clone(),
                        message: format!(
                            "input `{}` has symbolic dim `{s}` and no size was given for it",
                            spec.name
                        ),
                    }),
            })
            .collect()
    }

    /// [`Self::concrete_shape`] for host data of `len` values, which must fill it.
    fn host_input_shape(
        &self,
        spec: &TensorSpec,
        dims: &[(&str, usize)],
        len: usize,
    ) -> Result<Vec<i64>, SessionError> {
        let shape = self.concrete_shape(spec, dims)?;
        let numel: i64 = shape.iter().product();
        if len as i64 != numel {
            return Err(SessionError::Run {
                model: self.model.clone(),
                message: format!(
                    "input `{}` needs {numel} values for shape {shape:?}, got {len}",
                    spec.name
                ),
            });
        }
        Ok(shape)
    }

    /// Runs through ONNX Runtime's I/O binding: inputs from the host or already resident
    /// ([`DeviceTensor`]), the requested outputs left in `placement` (the session's device keeps
    /// them there, so the next stage reads them without a round trip through the host).
    pub fn run_bound(
        &mut self,
        dims: &[(&str, usize)],
        inputs: &[(&str, BoundInput<'_>)],
        outputs: &[&str],
        placement: Placement,
    ) -> Result<Vec<DeviceTensor>, SessionError> {
        let model = self.model.clone();
        let fail = |message: String| SessionError::Run {
            model: model.clone(),
            message,
        };
        let ort_err = |e: ort::Error| fail(e.to_string());
        let mut binding = self.session.create_binding().map_err(ort_err)?;
        for spec in &self.inputs {
            let Some((_, input)) = inputs.iter().find(|(n, _)| *n == spec.name) else {
                return Err(fail(format!("input `{}` not given", spec.name)));
            };
            match input {
                BoundInput::Host(data) => {
                    let shape = self.host_input_shape(spec, dims, data.len())?;
                    // Owned, so that the binding holds it without a second copy.
                    let t =
                        ort::value::Tensor::from_array((shape, data.to_vec())).map_err(ort_err)?;
                    binding
                        .bind_input(spec.name.as_str(), &t)
                        .map_err(ort_err)?;
                }
                BoundInput::Resident(t) => {
                    let shape = self.concrete_shape(spec, dims)?;
                    let same = t.shape().len() == shape.len()
                        && t.shape().iter().zip(&shape).all(|(&a, &b)| a as i64 == b);
                    if !same {
                        return Err(fail(format!(
                            "input `{}` has shape {:?}, expected {shape:?}",
                            spec.name,
                            t.shape()
                        )));
                    }
                    binding
                        .bind_input(spec.name.as_str(), t.value())
                        .map_err(ort_err)?;
                }
            }
        }
        let memory = placement.memory_info().map_err(ort_err)?;
        for name in outputs {
            binding
                .bind_output_to_device(*name, &memory)
                .map_err(ort_err)?;
        }
        let mut result = self.session.run_binding(&binding).map_err(ort_err)?;
        outputs
            .iter()
            .map(|name| take_output(&mut result, name, &fail))
            .collect()
    }
}
