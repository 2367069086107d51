//! Device launchers for `kernels/sketch.cu`: the window's target sketches (and reference
//! sketches) drawn and resized on the GPU.
//!
//! [`DeviceSketcher`] owns everything the two kernels read besides the caller's output: the
//! connection table (uploaded once) and scratch for the landmarks, the canvas sizes and the
//! canvases (grown as batches need). Keeping the launches private to it is what makes them safe:
//! the connection table is always [`CONNECTION_TABLE`] (columns < 131), and `canvas_wh` on the
//! device is always the one uploaded from the [`SketchLayout`] the launch sizes were taken from,
//! so no caller can hand the kernels a table or a size that would index out of bounds.

use std::sync::Arc;

use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, CudaViewMut, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};

use crate::face::indices::FULL_LEN;
use crate::image::{ImageError, SketchScaling};
use crate::kernels::GpuKernels;
use crate::kernels::check::{self, CheckRng, FACE, REFERENCES, StepCheck};
use crate::kernels::device::GpuError;
use crate::kernels::host::sketch::{
    CONNECTION_TABLE, CONNECTIONS, SketchLayout, draw_canvases, render_sketches, scaling_code,
};
use crate::sizes::{FACE_SIZE, WINDOW};

/// One sketch's landmarks: row 0 = x, row 1 = y, crop-normalised (POSE then CONTENT columns).
pub type LandmarkSet = [[f32; FULL_LEN]; 2];

/// `iplap_sketch_draw`'s block: one thread per connection.
const DRAW_BLOCK: u32 = 128;
/// `iplap_sketch_resize`'s block side (16 x 16 threads).
const RESIZE_BLOCK: u32 = 16;

/// Launch geometry of `iplap_sketch_draw` for `n_sketches` (<= `MAX_SKETCHES`, checked by
/// [`SketchLayout::new`]): grid (ceil(connections / 128), S, 1), block (128, 1, 1).
fn draw_config(n_sketches: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            (CONNECTIONS as u32).div_ceil(DRAW_BLOCK),
            n_sketches as u32,
            1,
        ),
        block_dim: (DRAW_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch geometry of `iplap_sketch_resize`: grid (8, 8, S), block (16, 16, 1), one thread per
/// output pixel of every 128 x 128 sketch.
fn resize_config(n_sketches: usize) -> LaunchConfig {
    let side = (FACE_SIZE as u32).div_ceil(RESIZE_BLOCK);
    LaunchConfig {
        grid_dim: (side, side, n_sketches as u32),
        block_dim: (RESIZE_BLOCK, RESIZE_BLOCK, 1),
        shared_mem_bytes: 0,
    }
}

fn input(e: ImageError) -> GpuError {
    GpuError::Input(format!("sketch: {e}"))
}

/// Every host-side check of one batch, before anything is enqueued: the layout (through the same
/// [`SketchLayout::new`] the host build uses), one landmark set per crop, and `out_len` (when
/// given) holding exactly S x 3 x 128 x 128 values.
fn validate(
    landmarks: &[LandmarkSet],
    crops: &[(usize, usize)],
    out_len: Option<usize>,
) -> Result<SketchLayout, GpuError> {
    let layout = SketchLayout::new(crops).map_err(input)?;
    if landmarks.len() != layout.len() {
        return Err(GpuError::Input(format!(
            "sketch: {} landmark sets for {} crops",
            landmarks.len(),
            layout.len()
        )));
    }
    if let Some(got) = out_len
        && got != layout.output_len()
    {
        return Err(input(ImageError::BadLength {
            expected: layout.output_len(),
            got,
        }));
    }
    Ok(layout)
}

/// Reallocates `buf` (zeroed) when it holds fewer than `len` elements. Old contents are dropped:
/// every use uploads or clears the part it reads first.
fn grow<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    buf: &mut CudaSlice<T>,
    len: usize,
    what: &str,
) -> Result<(), GpuError> {
    if buf.len() < len {
        *buf = stream.alloc_zeros(len).map_err(GpuError::cuda(what))?;
    }
    Ok(())
}

/// The sketch kernels with their device state, for one [`GpuKernels`] stream.
#[derive(Debug)]
pub struct DeviceSketcher {
    stream: Arc<CudaStream>,
    draw: CudaFunction,
    resize: CudaFunction,
    /// [`CONNECTION_TABLE`], uploaded once.
    connections: CudaSlice<i32>,
    /// S x 2 x 131 `f32` scratch (used prefix).
    landmarks: CudaSlice<f32>,
    /// S x 2 `i32` scratch (used prefix).
    canvas_wh: CudaSlice<i32>,
    /// S x canvas_stride bytes scratch (used prefix).
    canvases: CudaSlice<u8>,
}

impl DeviceSketcher {
    /// Loads the entry points and uploads the connection table. The scratch starts sized for a
    /// window of square crops (every canvas has at least 128 x 128 pixels) and grows on demand.
    pub fn new(kernels: &GpuKernels) -> Result<Self, GpuError> {
        let stream = kernels.stream().clone();
        let connections = stream
            .clone_htod(&CONNECTION_TABLE)
            .map_err(GpuError::cuda("sketch connection table"))?;
        let alloc = |what| GpuError::cuda(format!("sketch {what} scratch"));
        Ok(Self {
            draw: kernels.function("sketch", "iplap_sketch_draw")?,
            resize: kernels.function("sketch", "iplap_sketch_resize")?,
            connections,
            landmarks: stream
                .alloc_zeros(WINDOW * 2 * FULL_LEN)
                .map_err(alloc("landmark"))?,
            canvas_wh: stream.alloc_zeros(WINDOW * 2).map_err(alloc("size"))?,
            canvases: stream
                .alloc_zeros(WINDOW * FACE_SIZE * FACE_SIZE)
                .map_err(alloc("canvas"))?,
            stream,
        })
    }

    /// Sketches `landmarks[s]` for a crop of `crops[s] = (crop_w, crop_h)` into `out` (S x 3 x
    /// 128 x 128 `f32`, sketch after sketch), as [`render_sketches`] does on the host: uploads
    /// the landmarks and canvas sizes, clears the canvases, draws, resizes, all enqueued on the
    /// kernels' stream (nothing waits for the GPU). Note the `(w, h)` order of `crops` (the
    /// engine's `window_crop_hw` is `(h, w)`). Invalid sizes or lengths are [`GpuError::Input`],
    /// reported before anything is enqueued.
    pub fn render(
        &mut self,
        kernels: &GpuKernels,
        landmarks: &[LandmarkSet],
        crops: &[(usize, usize)],
        scaling: SketchScaling,
        out: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), GpuError> {
        let layout = validate(landmarks, crops, Some(out.len()))?;
        self.draw(kernels, landmarks, &layout)?;
        self.resize(kernels, &layout, scaling, out)
    }

    /// The scratch buffers live on the stream they were made on; another `GpuKernels` (another
    /// stream, maybe another context) must not launch on them.
    fn check_stream(&self, kernels: &GpuKernels) -> Result<(), GpuError> {
        if Arc::ptr_eq(&self.stream, kernels.stream()) {
            Ok(())
        } else {
            Err(GpuError::Input(
                "sketch: DeviceSketcher used with other kernels than it was made for".into(),
            ))
        }
    }

    /// Uploads, clears and draws the canvases of a validated batch (`layout` from [`validate`]
    /// on these `landmarks`).
    fn draw(
        &mut self,
        kernels: &GpuKernels,
        landmarks: &[LandmarkSet],
        layout: &SketchLayout,
    ) -> Result<(), GpuError> {
        self.check_stream(kernels)?;
        let n = layout.len();
        // `render` validated this already; kept so the upload below can never size wrongly.
        if landmarks.len() != n {
            return Err(GpuError::Input(format!(
                "sketch: {} landmark sets for {n} canvases",
                landmarks.len()
            )));
        }
        let stream = kernels.stream();
        let values = n * 2 * FULL_LEN;
        let bytes = layout.canvas_bytes();
        grow(
            stream,
            &mut self.landmarks,
            values,
            "sketch landmark scratch",
        )?;
        grow(stream, &mut self.canvas_wh, 2 * n, "sketch size scratch")?;
        grow(stream, &mut self.canvases, bytes, "sketch canvas scratch")?;
        // Pageable host-to-device copies return once the source is staged, so the caller's
        // slices may change as soon as this returns; the stream orders them before the launch.
        let flat = landmarks.as_flattened().as_flattened();
        stream
            .memcpy_htod(flat, &mut self.landmarks.slice_mut(..values))
            .map_err(GpuError::cuda("sketch landmark upload"))?;
        stream
            .memcpy_htod(layout.canvas_wh(), &mut self.canvas_wh.slice_mut(..2 * n))
            .map_err(GpuError::cuda("sketch size upload"))?;
        // The kernel only writes line pixels, so the canvases must start at zero.
        let mut canvases = self.canvases.slice_mut(..bytes);
        stream
            .memset_zeros(&mut canvases)
            .map_err(GpuError::cuda("sketch canvas clear"))?;
        let lm = self.landmarks.slice(..values);
        let wh = self.canvas_wh.slice(..2 * n);
        let n_connections = CONNECTIONS as i32;
        let stride = layout.canvas_stride() as u64;
        let n_sketches = layout.n_sketches();
        let mut b = stream.launch_builder(&self.draw);
        b.arg(&lm)
            .arg(&self.connections)
            .arg(&n_connections)
            .arg(&wh)
            .arg(&mut canvases)
            .arg(&stride)
            .arg(&n_sketches);
        // SAFETY: the arguments match `iplap_sketch_draw(const float*, const i32*, i32,
        // const i32*, u8*, u64, i32)` in order and type. `lm` holds S x 2 x 131 f32 and the
        // connection table's columns are < 131; `wh` holds the layout's S (w, h) pairs, each with
        // w * h <= stride, and `canvases` S x stride bytes, so every plotted pixel is in bounds.
        // The grid is the documented one for S = `n_sketches` sketches.
        unsafe { b.launch(draw_config(n)) }.map_err(GpuError::cuda("iplap_sketch_draw"))?;
        Ok(())
    }

    /// Resizes the canvases [`Self::draw`] just drew for `layout` into `out` (S x 3 x 128 x 128).
    fn resize(
        &self,
        kernels: &GpuKernels,
        layout: &SketchLayout,
        scaling: SketchScaling,
        out: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), GpuError> {
        self.check_stream(kernels)?;
        if out.len() != layout.output_len() {
            return Err(input(ImageError::BadLength {
                expected: layout.output_len(),
                got: out.len(),
            }));
        }
        let canvases = self.canvases.slice(..layout.canvas_bytes());
        let wh = self.canvas_wh.slice(..2 * layout.len());
        let stride = layout.canvas_stride() as u64;
        let n_sketches = layout.n_sketches();
        let code = scaling_code(scaling);
        let mut b = kernels.stream().launch_builder(&self.resize);
        b.arg(&canvases)
            .arg(&stride)
            .arg(&wh)
            .arg(&n_sketches)
            .arg(&code)
            .arg(out);
        // SAFETY: the arguments match `iplap_sketch_resize(const u8*, u64, const i32*, i32, i32,
        // float*)` in order and type. `canvases` and `wh` are the buffers `draw` filled for this
        // same layout (stream order), the taps stay inside each w x h canvas, and `out` holds
        // exactly S x 3 x 128 x 128 f32 (checked above). The grid is the documented one.
        unsafe { b.launch(resize_config(layout.len())) }
            .map_err(GpuError::cuda("iplap_sketch_resize"))?;
        Ok(())
    }
}

/// Ellipse radii (x, y) of the rings the columns are spread over: face outline, cheeks, eyes and
/// nose, mouth. Lines between columns then run in every direction and length.
const RINGS: [(f32, f32); 4] = [(0.40, 0.42), (0.30, 0.32), (0.18, 0.14), (0.10, 0.06)];
const GOLDEN_ANGLE: f32 = 2.399_963;

/// A face-like set: column `c` on ring `c % 4` at the golden angle times `c`, centred at (0.5,
/// 0.55), moved by up to 0.01 (so sets of one window differ like consecutive frames). Every
/// point lies in [0.08, 0.98].
pub(crate) fn face_set(rng: &mut CheckRng) -> LandmarkSet {
    let mut set = [[0.0f32; FULL_LEN]; 2];
    for c in 0..FULL_LEN {
        let (rx, ry) = RINGS[c % RINGS.len()];
        let angle = c as f32 * GOLDEN_ANGLE;
        set[0][c] = 0.5 + rx * angle.cos() + rng.range(-0.01, 0.01);
        set[1][c] = 0.55 + ry * angle.sin() + rng.range(-0.01, 0.01);
    }
    set
}

/// Column `i` of the connection table (an endpoint of edge `i / 2`), so the edits below hit
/// points that are actually drawn.
fn column(i: usize) -> usize {
    CONNECTION_TABLE[i] as usize
}

/// The boundary cases of `to_pixel`, one per `kind % 5`: none; exact 1.0 and 0.0 (inside, on the
/// last / first pixel); 1.02 and -0.004 (outside: their edges are dropped); NaN (dropped); the
/// next `f32` above 1.0 (just outside).
fn add_edge_cases(set: &mut LandmarkSet, kind: usize) {
    match kind % 5 {
        1 => {
            set[0][column(0)] = 1.0;
            set[1][column(1)] = 0.0;
        }
        2 => {
            set[0][column(20)] = 1.02;
            set[1][column(121)] = -0.004;
        }
        3 => set[0][column(90)] = f32::NAN,
        4 => set[1][column(201)] = f32::from_bits(1.0f32.to_bits() + 1),
        _ => {}
    }
}

/// The frame's window: five sets for crops around [`FACE`] (the window's crops differ by a few
/// pixels, which exercises a canvas stride above some canvases' size), one edge case each.
fn window_case() -> (Vec<LandmarkSet>, Vec<(usize, usize)>) {
    let mut rng = CheckRng::new(0x5EED_0005_CAFE_F00D);
    let (w, h) = FACE;
    let crops = vec![
        (w - 2, h - 3),
        (w - 1, h - 1),
        (w, h),
        (w + 2, h),
        (w + 3, h + 3),
    ];
    let sets = (0..WINDOW)
        .map(|j| {
            let mut set = face_set(&mut rng);
            add_edge_cases(&mut set, j);
            set
        })
        .collect();
    (sets, crops)
}

/// The bank's references: [`REFERENCES`] sets for crops of assorted sizes (landscape, portrait
/// and square canvases), the edge cases cycling.
fn reference_case() -> (Vec<LandmarkSet>, Vec<(usize, usize)>) {
    let mut rng = CheckRng::new(0x5EED_0025_BA5E_BA11);
    let crops = (0..REFERENCES)
        .map(|k| (420 + (k * 37) % 220, 400 + (k * 53) % 240))
        .collect();
    let sets = (0..REFERENCES)
        .map(|k| {
            let mut set = face_set(&mut rng);
            add_edge_cases(&mut set, k);
            set
        })
        .collect();
    (sets, crops)
}

fn step(what: String, (max_abs_diff, differing): (f64, usize), compared: usize) -> StepCheck {
    StepCheck {
        family: "sketch",
        step: what,
        max_abs_diff,
        differing,
        compared,
        limit: 0.0,
        gpu_ms: 0.0,
    }
}

/// Runs one batch on the device (output pre-filled with NaN and the canvas scratch with 0xA5, so
/// an unwritten pixel or a missing clear shows), compares the sketches and (`with_canvases`) the
/// canvases with the host build, then times the whole render: landmark and size uploads, clear,
/// draw, resize (the per-frame work), and with `with_canvases` the draw half alone.
fn check_batch(
    kernels: &GpuKernels,
    iterations: usize,
    sketcher: &mut DeviceSketcher,
    (sets, crops): (Vec<LandmarkSet>, Vec<(usize, usize)>),
    scaling: SketchScaling,
    what: &str,
    with_canvases: bool,
) -> Result<Vec<StepCheck>, GpuError> {
    let stream = kernels.stream().clone();
    let layout = validate(&sets, &crops, None)?;
    let mut want = vec![0.0f32; layout.output_len()];
    render_sketches(&sets, &crops, scaling, &mut want).map_err(input)?;
    let mut out = stream
        .alloc_zeros::<f32>(layout.output_len())
        .map_err(GpuError::cuda("sketch output"))?;
    // Render once to grow the scratch, so the fills below cover what the checked render uses.
    sketcher.render(kernels, &sets, &crops, scaling, &mut out.slice_mut(..))?;
    let dirty = vec![0xA5u8; layout.canvas_bytes()];
    stream
        .memcpy_htod(&dirty, &mut sketcher.canvases.slice_mut(..dirty.len()))
        .map_err(GpuError::cuda("sketch canvas fill"))?;
    stream
        .memcpy_htod(&vec![f32::NAN; out.len()], &mut out)
        .map_err(GpuError::cuda("sketch output fill"))?;
    sketcher.render(kernels, &sets, &crops, scaling, &mut out.slice_mut(..))?;
    let got = stream
        .clone_dtoh(&out)
        .map_err(GpuError::cuda("sketch download"))?;
    let canvases = stream
        .clone_dtoh(&sketcher.canvases.slice(..layout.canvas_bytes()))
        .map_err(GpuError::cuda("sketch canvas download"))?;
    stream
        .synchronize()
        .map_err(GpuError::cuda("sketch download"))?;

    let mut steps = Vec::new();
    let mut render = step(
        format!("{what}: render (upload, clear, draw, resize)"),
        check::compare_f32(&got, &want),
        want.len(),
    );
    render.gpu_ms = check::median_gpu_ms(kernels, iterations, || {
        sketcher.render(kernels, &sets, &crops, scaling, &mut out.slice_mut(..))
    })?;
    steps.push(render);
    if with_canvases {
        let mut host = vec![0u8; layout.canvas_bytes()];
        draw_canvases(&sets, &layout, &mut host).map_err(input)?;
        let mut draw = step(
            format!("{what}: canvases (upload, clear, draw)"),
            check::compare_u8(&canvases, &host),
            host.len(),
        );
        draw.gpu_ms = check::median_gpu_ms(kernels, iterations, || {
            sketcher.draw(kernels, &sets, &layout)
        })?;
        steps.push(draw);
    }
    Ok(steps)
}

/// The family's GPU check: the frame's five target sketches (Target scaling, crops around
/// 577 x 455, canvases compared too) and the bank's 25 reference sketches (Reference scaling,
/// assorted crops), each against [`render_sketches`] bit for bit.
pub fn check(kernels: &GpuKernels, iterations: usize) -> Result<Vec<StepCheck>, GpuError> {
    let mut sketcher = DeviceSketcher::new(kernels)?;
    let mut steps = check_batch(
        kernels,
        iterations,
        &mut sketcher,
        window_case(),
        SketchScaling::Target,
        "5 target sketches",
        true,
    )?;
    steps.extend(check_batch(
        kernels,
        iterations,
        &mut sketcher,
        reference_case(),
        SketchScaling::Reference,
        "25 reference sketches",
        false,
    )?);
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::host::sketch::{MAX_SKETCHES, SKETCH_VALUES};

    #[test]
    fn launch_geometry_covers_every_connection_and_pixel() {
        for n in [1, WINDOW, REFERENCES, MAX_SKETCHES] {
            let d = draw_config(n);
            assert_eq!(d.block_dim, (128, 1, 1));
            assert_eq!(d.grid_dim, (1, n as u32, 1));
            assert!(d.grid_dim.0 * d.block_dim.0 >= CONNECTIONS as u32);
            let r = resize_config(n);
            assert_eq!(r.block_dim, (16, 16, 1));
            assert_eq!(r.grid_dim, (8, 8, n as u32));
        }
    }

    #[test]
    fn validation_rejects_what_the_kernels_cannot_take() {
        let set = [[0.5f32; FULL_LEN]; 2];
        let crops = [(577, 455), (100, 90)];
        let layout = validate(&[set, set], &crops, Some(2 * SKETCH_VALUES)).unwrap();
        assert_eq!(layout.len(), 2);
        assert_eq!(layout.canvas_wh(), &[162, 128, 142, 128]);
        assert!(validate(&[set, set], &crops, None).is_ok());
        let bad = |r: Result<SketchLayout, GpuError>| matches!(r, Err(GpuError::Input(_)));
        assert!(bad(validate(&[], &[], None)));
        assert!(bad(validate(&[set], &crops, None)));
        assert!(bad(validate(&[set, set, set], &crops, None)));
        assert!(bad(validate(&[set, set], &crops, Some(SKETCH_VALUES))));
        assert!(bad(validate(&[set], &[(0, 455)], None)));
        assert!(bad(validate(&[set], &[(1, 1 << 20)], None)));
    }

    #[test]
    fn cases_are_deterministic_and_draw() {
        let (a, ca) = window_case();
        let (b, cb) = window_case();
        assert_eq!(ca, cb);
        assert_eq!(a.len(), WINDOW);
        let bits = |s: &[LandmarkSet]| -> Vec<u32> {
            s.iter().flatten().flatten().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(&a), bits(&b));
        assert!(ca.contains(&FACE));
        // Outside the planned edge cases every point is well inside [0, 1].
        let plain = &a[0];
        assert!(plain.iter().flatten().all(|&v| (0.07..=0.99).contains(&v)));
        assert!(a[3][0].iter().any(|v| v.is_nan()));

        for (sets, crops) in [(a, ca), reference_case()] {
            let mut out = vec![0.0f32; sets.len() * SKETCH_VALUES];
            render_sketches(&sets, &crops, SketchScaling::Target, &mut out).unwrap();
            for sketch in out.chunks_exact(SKETCH_VALUES) {
                let lit = sketch.iter().filter(|&&v| v > 0.0).count();
                assert!(lit > 1000, "a case sketch is nearly empty ({lit})");
            }
        }
    }

    #[test]
    fn edge_cases_drop_edges() {
        // The out-of-range points must remove lines, or the case would not test dropping.
        let mut rng = CheckRng::new(7);
        let base = face_set(&mut rng);
        let lit = |set: &LandmarkSet| {
            let mut canvases = vec![0u8; 128 * 128];
            let layout = SketchLayout::new(&[(128, 128)]).unwrap();
            draw_canvases(&[*set], &layout, &mut canvases).unwrap();
            canvases.iter().filter(|&&v| v != 0).count()
        };
        let all = lit(&base);
        for kind in 2..5 {
            let mut set = base;
            add_edge_cases(&mut set, kind);
            assert!(lit(&set) < all, "edge case {kind} dropped nothing");
        }
    }
}
