//! The device properties both elements share (`device`, `device-id`, `precision`,
//! `engine-cache`): GObject faces of the engine's [`iplap::runtime::DeviceConfig`], and the one
//! place an element resolves `auto` and logs the choice.

use gst::glib;
use gst::prelude::*;
use iplap::runtime::{self, DeviceConfig, MAX_DEVICE_ID};

/// Where the networks run (`device` property).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIplapDevice")]
pub enum Device {
    /// The best that initialises: tensorrt-rtx or tensorrt, then cuda, then cpu.
    #[default]
    #[enum_value(
        name = "Best available (tensorrt-rtx, tensorrt, cuda, cpu)",
        nick = "auto"
    )]
    Auto = 0,
    /// ONNX Runtime on the CPU.
    #[enum_value(name = "CPU (ONNX Runtime)", nick = "cpu")]
    Cpu = 1,
    /// ONNX Runtime's CUDA execution provider.
    #[enum_value(name = "NVIDIA GPU, ONNX Runtime CUDA provider", nick = "cuda")]
    Cuda = 2,
    /// ONNX Runtime's TensorRT execution provider (user-installed TensorRT 10).
    #[enum_value(name = "NVIDIA GPU, TensorRT 10 engines", nick = "tensorrt")]
    TensorRt = 3,
    /// The NvTensorRTRTX plugin provider (RTX-class GPUs).
    #[enum_value(name = "NVIDIA RTX GPU, TensorRT-RTX engines", nick = "tensorrt-rtx")]
    TensorRtRtx = 4,
}

impl From<Device> for runtime::Device {
    fn from(d: Device) -> Self {
        match d {
            Device::Auto => runtime::Device::Auto,
            Device::Cpu => runtime::Device::Cpu,
            Device::Cuda => runtime::Device::Cuda,
            Device::TensorRt => runtime::Device::TensorRt,
            Device::TensorRtRtx => runtime::Device::TensorRtRtx,
        }
    }
}

/// Arithmetic precision on a GPU (`precision` property).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstIplapPrecision")]
pub enum Precision {
    #[default]
    #[enum_value(name = "fp32 (parity with the official code)", nick = "fp32")]
    Fp32 = 0,
    #[enum_value(name = "TensorFloat-32 matrix maths", nick = "tf32")]
    Tf32 = 1,
    #[enum_value(name = "Half precision", nick = "fp16")]
    Fp16 = 2,
}

impl From<Precision> for runtime::Precision {
    fn from(p: Precision) -> Self {
        match p {
            Precision::Fp32 => runtime::Precision::Fp32,
            Precision::Tf32 => runtime::Precision::Tf32,
            Precision::Fp16 => runtime::Precision::Fp16,
        }
    }
}

/// The shared device settings of an element.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceSettings {
    pub device: Device,
    pub device_id: u32,
    pub precision: Precision,
    pub engine_cache: Option<String>,
}

impl DeviceSettings {
    /// The param specs (changeable up to READY: sessions are built at start).
    pub fn param_specs() -> Vec<glib::ParamSpec> {
        let d = DeviceSettings::default();
        vec![
            glib::ParamSpecEnum::builder_with_default("device", d.device)
                .nick("Device")
                .blurb("Where the networks run. auto: the best provider that initialises (tensorrt-rtx, tensorrt, cuda, then cpu), logged at start. An explicit GPU device that cannot run fails the start with the missing piece named.")
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("device-id")
                .nick("Device ID")
                .blurb("GPU index (CUDA ordinal) for the GPU devices (`iplap devices` lists them).")
                .maximum(MAX_DEVICE_ID)
                .default_value(d.device_id)
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("precision", d.precision)
                .nick("Precision")
                .blurb("Arithmetic on a GPU: fp32 (parity), tf32 (TensorFloat-32 matrix maths), fp16. The CPU runs fp32.")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("engine-cache")
                .nick("Engine Cache")
                .blurb("Folder for TensorRT engines (tensorrt, tensorrt-rtx); NULL: $XDG_CACHE_HOME/iplap/engines (~/.cache/iplap/engines).")
                .mutable_ready()
                .build(),
        ]
    }

    /// Sets one of the shared properties; `false` when `name` is not one of them.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        const GET: &str = "type checked upstream";
        match name {
            "device" => self.device = value.get().expect(GET),
            "device-id" => self.device_id = value.get().expect(GET),
            "precision" => self.precision = value.get().expect(GET),
            "engine-cache" => {
                self.engine_cache = value
                    .get::<Option<String>>()
                    .expect(GET)
                    .filter(|s| !s.is_empty())
            }
            _ => return false,
        }
        true
    }

    /// Reads one of the shared properties.
    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "device" => self.device.to_value(),
            "device-id" => self.device_id.to_value(),
            "precision" => self.precision.to_value(),
            "engine-cache" => self.engine_cache.to_value(),
            _ => return None,
        })
    }

    /// The engine's configuration (device possibly `auto`).
    pub fn config(&self) -> DeviceConfig {
        DeviceConfig {
            device: self.device.into(),
            device_id: self.device_id,
            precision: self.precision.into(),
            engine_cache: self.engine_cache.as_ref().map(Into::into),
        }
    }

    /// Resolves the device ([`Self::resolve`]) and runs `load` on it. With `device=auto`, a GPU
    /// that passed the checks but fails to build the sessions (a driver or library problem the
    /// probes cannot see) is not fatal: a warning says so, and `load` runs again on the CPU (an
    /// error that is not the GPU's then comes back from the CPU run).
    pub fn load<T>(
        &self,
        element: &gst::Element,
        cat: gst::DebugCategory,
        load: impl Fn(DeviceConfig) -> Result<T, gst::ErrorMessage>,
    ) -> Result<T, gst::ErrorMessage> {
        let device = self.resolve(element, cat)?;
        let gpu = device.device.is_gpu();
        let device_name = device.to_string();
        match load(device) {
            Err(e) if gpu && self.device == Device::Auto => {
                let text = format!(
                    "device=auto: starting on {device_name} failed; trying the CPU \
                     (GST_DEBUG={}:2 shows why)",
                    cat.name()
                );
                gst::warning!(cat, obj = element, "{text}: {e:?}");
                element
                    .post_message(
                        gst::message::Warning::builder(gst::LibraryError::Settings, &text)
                            .src(element)
                            .build(),
                    )
                    .ok();
                load(DeviceConfig::cpu())
            }
            other => other,
        }
    }

    /// Resolves `auto` (once, at start) and logs the choice on `element`: info normally, a
    /// warning message when a GPU runtime or driver is present but unusable. An explicit device
    /// that cannot run is an error naming the missing piece.
    pub fn resolve(
        &self,
        element: &gst::Element,
        cat: gst::DebugCategory,
    ) -> Result<DeviceConfig, gst::ErrorMessage> {
        let resolution = runtime::providers::resolve(&self.config())
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{e}")))?;
        let line = resolution.describe();
        if resolution.fell_back_from_gpu() {
            gst::warning!(cat, obj = element, "device=auto: {line}");
            element
                .post_message(
                    gst::message::Warning::builder(
                        gst::LibraryError::Settings,
                        &format!("device=auto fell back to the CPU: {line}"),
                    )
                    .src(element)
                    .build(),
                )
                .ok();
        } else {
            gst::info!(
                cat,
                obj = element,
                "device={}: {line}",
                self.config().device
            );
        }
        Ok(resolution.config)
    }
}
