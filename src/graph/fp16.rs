//! fp16 forms of the GPU graphs: fp16 weights and activations, fp32 graph inputs and outputs.
//!
//! Why a graph pass: ONNX Runtime's CUDA provider has no fp16 switch (TensorRT has one, which the
//! TensorRT device uses on the fp32 graphs), and TensorRT-RTX builds strongly typed networks, whose
//! precision is the ONNX tensor types. Both need graphs whose tensors are float16. The networks
//! stay written once (`src/graph/`); [`to_fp16`] rewrites any finished fp32 graph.
//!
//! What [`to_fp16`] does, op by op (the table is `rule` below; an op without a rule is refused):
//! * float32 initializers become float16 when every reader computes in fp16; an initializer that an
//!   fp32 reader also needs stays float32 (plus an fp16 copy when fp16 readers need it too). Values
//!   beyond fp16's ±65504 are refused ([`out_of_range`]): rounding them would give ±inf.
//! * Inputs that the ONNX spec types separately from the data stay as they are: `Resize` roi,
//!   scales and sizes, shape / axes / indices / pads inputs (int64), the `Pow` exponent, `Where`'s
//!   condition. Int64 shape arithmetic is not touched.
//! * `Cast` to float, `Constant` and `ConstantOfShape` holding float become float16 producers.
//! * Ops named in `keep_fp32` ([`KEEP_FP32`] by default) run in fp32 with a `Cast` in front of each
//!   fp16 input and after the output where an fp16 op reads it; data-movement ops (`Identity`,
//!   `Reshape`, …) take the precision of their input, so two kept ops joined by one of them, or a
//!   kept final `Sigmoid` and the `Identity` naming the graph output, need no `Cast` pair.
//! * Graph inputs and outputs keep their names and float32 types: each input is cast once, before
//!   its first fp16 reader, and an output computed in fp16 is cast back under its own name.
//!   `value_info` is dropped (ONNX Runtime infers it again).
//!
//! Checked by `tests/fp16_graphs.rs`: typing of every converted stage, the reverse pass (the fp16
//! graph widened back equals the fp32 graph with fp16-rounded weights), the golden frame through
//! the fp16 stages, and the range checks.

mod proto_edit;

use std::collections::{BTreeSet, HashMap, HashSet};

use prost::Message;

use super::GraphError;
use super::onnx::proto::{self, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use proto_edit::{f32_data, max_abs, narrow, rebuilt, with_graph};

/// `TensorProto.DataType.FLOAT16`.
pub const DT_FLOAT16: i32 = 10;
/// The largest finite fp16 value.
pub const FP16_MAX: f32 = 65504.0;

/// Op types the package's fp16 graphs keep in fp32: normalisations and softmax, whose statistics
/// are sums that overflow fp16 unless the kernel accumulates in fp32 (ONNX does not promise it;
/// ONNX Runtime's CUDA InstanceNorm also had an fp16 bug, microsoft/onnxruntime#10079), and the
/// final `Sigmoid` / `Tanh`, free in fp32 because the output cast moves in front of them.
/// Measured on the golden frame (`tests/fp16_graphs.rs`): the renderer's InstanceNorm inputs reach
/// |x| ≈ 27 on 64×64 and 128×128 planes (a sum of squares up to ~1e7, fp16 ends at 65504); with
/// activations rounded to fp16 the face is 65.8 dB with this list and 65.7 dB with nothing kept,
/// so the list guards the reductions inside the kernels rather than rounding; it costs two casts
/// per InstanceNorm.
pub const KEEP_FP32: [&str; 5] = [
    "InstanceNormalization",
    "LayerNormalization",
    "Softmax",
    "Sigmoid",
    "Tanh",
];

/// Precision of a float value or node in the converted graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum P {
    F16,
    F32,
}

impl P {
    fn code(self) -> i32 {
        match self {
            P::F16 => DT_FLOAT16,
            P::F32 => proto::DT_FLOAT,
        }
    }
}

/// How a node input relates to the node's precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Type `T` of the op: converted with the node.
    Data,
    /// Typed on its own by the spec (shapes, axes, `Resize` scales): left as it is.
    Fixed,
    /// Any type (`Cast`, `Shape`): read whichever form exists.
    Any,
}

/// What a node does with types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Arithmetic in type `T`.
    Math,
    /// Moves data without arithmetic: takes its input's precision.
    Move,
    /// `Cast`: float output when `to` is float.
    Cast,
    /// `Constant`, `ConstantOfShape`: the value attribute's type.
    Source,
    /// Int64 output whatever the input (`Shape`, `Size`).
    IntOut,
}

struct Rule {
    kind: Kind,
    roles: &'static [Role],
    /// Role of the inputs after `roles` (variadic ops).
    rest: Role,
}

impl Rule {
    fn role(&self, i: usize) -> Role {
        self.roles.get(i).copied().unwrap_or(self.rest)
    }
}

/// Ops computing in their data type `T` from inputs that all have type `T`.
#[rustfmt::skip]
const MATH: &[&str] = &[
    "Relu", "LeakyRelu", "PRelu", "Elu", "Tanh", "Sigmoid", "HardSigmoid", "Softplus", "Sqrt",
    "Reciprocal", "Exp", "Log", "Abs", "Neg", "Erf", "Add", "Sub", "Mul", "Div", "Max", "Min",
    "Sum", "Mean", "MatMul", "Gemm", "Conv", "ConvTranspose", "InstanceNormalization",
    "LayerNormalization", "BatchNormalization", "Softmax", "LogSoftmax", "Clip", "GridSample",
    "AveragePool", "MaxPool", "GlobalAveragePool",
];

/// The fp16 rule of an `ai.onnx` op (opset 17 input types), or `None` when it has none yet.
fn rule(op: &str) -> Option<Rule> {
    use Role::{Any, Data, Fixed};
    let r = |kind, roles, rest| Some(Rule { kind, roles, rest });
    match op {
        _ if MATH.contains(&op) => r(Kind::Math, &[], Data),
        // int64 axes as input 1 (ReduceSum from opset 13, the others from 18); Resize's roi (T2),
        // scales (float32) and sizes (int64); Pow's exponent (T1) are typed apart from the data.
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceL2" | "Resize" | "Pow" => {
            r(Kind::Math, &[Data], Fixed)
        }
        "Where" => r(Kind::Math, &[Fixed], Data),
        // data, pads (int64), constant_value (T), axes (int64).
        "Pad" => r(Kind::Math, &[Data, Fixed, Data], Fixed),
        "Identity" | "Transpose" | "Concat" | "DepthToSpace" | "SpaceToDepth" | "Flatten" => {
            r(Kind::Move, &[], Data)
        }
        "Reshape" | "Squeeze" | "Unsqueeze" | "Slice" | "Gather" | "Split" | "Expand" | "Tile" => {
            r(Kind::Move, &[Data], Fixed)
        }
        "Cast" => r(Kind::Cast, &[], Any),
        "Constant" | "ConstantOfShape" => r(Kind::Source, &[], Fixed),
        "Shape" | "Size" => r(Kind::IntOut, &[], Any),
        _ => None,
    }
}

fn op_of(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or_default()
}

fn node_label(n: &NodeProto) -> String {
    format!("{} `{}`", op_of(n), n.name.as_deref().unwrap_or_default())
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

fn rule_of(n: &NodeProto) -> Result<Rule, GraphError> {
    if n.domain
        .as_deref()
        .is_some_and(|d| !d.is_empty() && d != "ai.onnx")
    {
        return Err(GraphError::invalid(format!(
            "fp16: {} is a custom operator ({}) with no fp16 form; convert a GPU graph",
            node_label(n),
            n.domain.as_deref().unwrap_or_default()
        )));
    }
    rule(op_of(n)).ok_or_else(|| {
        GraphError::invalid(format!(
            "fp16: no rule for {} (add one to graph::fp16::rule after checking its input types \
             in the ONNX spec)",
            node_label(n)
        ))
    })
}

/// Element type of a `Constant` / `ConstantOfShape` output.
fn source_type(n: &NodeProto) -> i32 {
    match n.attribute.first() {
        Some(AttributeProto { t: Some(t), .. }) => t.data_type.unwrap_or(0),
        Some(a) if a.i.is_some() || !a.ints.is_empty() => proto::DT_INT64,
        // value_float(s), or ConstantOfShape without `value` (float32 zeros).
        _ => proto::DT_FLOAT,
    }
}

/// Element type of every value of `graph` (inputs, initializers, node outputs), inferred with the
/// same rules the pass uses. Unknown ops are an error.
pub fn value_types(graph: &GraphProto) -> Result<HashMap<String, i32>, GraphError> {
    let mut types = HashMap::new();
    for v in &graph.input {
        let t = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        types.insert(
            v.name.clone().unwrap_or_default(),
            t.and_then(|t| t.elem_type).unwrap_or(0),
        );
    }
    for t in &graph.initializer {
        types.insert(t.name.clone().unwrap_or_default(), t.data_type.unwrap_or(0));
    }
    for n in &graph.node {
        let rule = rule_of(n)?;
        let first = n.input.first().and_then(|i| types.get(i)).copied();
        let data = n
            .input
            .iter()
            .enumerate()
            .find(|(i, _)| rule.role(*i) == Role::Data)
            .and_then(|(_, v)| types.get(v))
            .copied();
        for (i, o) in n.output.iter().enumerate() {
            let t = match (rule.kind, op_of(n), i) {
                (Kind::IntOut, _, _) | (_, "MaxPool", 1) => proto::DT_INT64,
                (Kind::Cast, _, _) => attr(n, "to").and_then(|a| a.i).unwrap_or(0) as i32,
                (Kind::Source, _, _) => source_type(n),
                // Mean and InvStdDev are in the stash type (float32 by default).
                (_, "LayerNormalization", 1..) => proto::DT_FLOAT,
                (Kind::Move, _, _) => first.unwrap_or(0),
                (Kind::Math, _, _) => data.unwrap_or(0),
            };
            types.insert(o.clone(), t);
        }
    }
    Ok(types)
}

/// The op types of a model (`domain.op` for custom domains), sorted.
pub fn op_types(model: &ModelProto) -> BTreeSet<String> {
    let nodes = model.graph.iter().flat_map(|g| &g.node);
    nodes
        .map(|n| match n.domain.as_deref() {
            Some(d) if !d.is_empty() => format!("{d}.{}", op_of(n)),
            _ => op_of(n).to_owned(),
        })
        .collect()
}

/// Precision decided for each node and each float initializer.
struct Plan {
    types: HashMap<String, i32>,
    /// Per node: `None` when the node has no float data (int64 shape arithmetic).
    nodes: Vec<Option<P>>,
    /// Float initializers: whether fp16 readers need them, whether fp32 readers do.
    init_needs: HashMap<String, (bool, bool)>,
}

impl Plan {
    fn new(graph: &GraphProto, keep: &[&str]) -> Result<Plan, GraphError> {
        let types = value_types(graph)?;
        for (name, &t) in &types {
            if matches!(t, DT_FLOAT16 | 11 | 16) {
                return Err(GraphError::invalid(format!(
                    "fp16: `{name}` has ONNX type {t}; the pass converts float32 graphs"
                )));
            }
        }
        let is_float = |v: &str| types.get(v) == Some(&proto::DT_FLOAT);
        let outputs: HashSet<&str> = graph
            .output
            .iter()
            .filter_map(|o| o.name.as_deref())
            .collect();
        let mut init_needs: HashMap<String, (bool, bool)> = graph
            .initializer
            .iter()
            .filter_map(|t| t.name.clone())
            .filter(|n| is_float(n))
            .map(|n| (n.clone(), (false, outputs.contains(n.as_str()))))
            .collect();
        // Precision of each float node output; graph inputs and initializers are free (cast or
        // converted wherever they are read), so data movement right after them runs in fp16.
        let mut produced: HashMap<&str, P> = HashMap::new();
        let mut nodes = Vec::with_capacity(graph.node.len());
        for n in &graph.node {
            let rule = rule_of(n)?;
            let data: Vec<&str> = (n.input.iter().enumerate())
                .filter(|(i, v)| rule.role(*i) == Role::Data && is_float(v))
                .map(|(_, v)| v.as_str())
                .collect();
            let float = match rule.kind {
                Kind::Math | Kind::Move => !data.is_empty(),
                Kind::Cast | Kind::Source => n.output.first().is_some_and(|o| is_float(o)),
                Kind::IntOut => false,
            };
            // Data movement after an fp32 value stays fp32 (no cast pair around it).
            let after_fp32 = || data.iter().all(|v| produced.get(v) == Some(&P::F32));
            let p = if !float {
                None
            } else if keep.contains(&op_of(n)) || (rule.kind == Kind::Move && after_fp32()) {
                Some(P::F32)
            } else {
                Some(P::F16)
            };
            for (i, v) in n.input.iter().enumerate() {
                let Some(need) = init_needs.get_mut(v) else {
                    continue;
                };
                match (rule.role(i), p) {
                    (Role::Data, Some(P::F16)) => need.0 = true,
                    (Role::Data, Some(P::F32)) | (Role::Fixed, _) => need.1 = true,
                    _ => {}
                }
            }
            if let Some(p) = p {
                for o in n.output.iter().filter(|o| is_float(o)) {
                    produced.insert(o, p);
                }
            }
            nodes.push(p);
        }
        Ok(Plan {
            types,
            nodes,
            init_needs,
        })
    }
}

/// The float constants that [`to_fp16`] would turn into fp16 but that exceed ±[`FP16_MAX`] (or
/// are NaN): `(name, max |x|)`, initializers by name, constant nodes by output name. Empty when
/// the graph converts.
pub fn out_of_range(
    model: &ModelProto,
    keep_fp32: &[&str],
) -> Result<Vec<(String, f32)>, GraphError> {
    let empty = GraphProto::default();
    let graph = model.graph.as_ref().unwrap_or(&empty);
    Ok(Plan::new(graph, keep_fp32)?.out_of_range(graph))
}

impl Plan {
    fn out_of_range(&self, graph: &GraphProto) -> Vec<(String, f32)> {
        let mut bad = Vec::new();
        for t in &graph.initializer {
            let name = t.name.clone().unwrap_or_default();
            if self.init_needs.get(&name).is_some_and(|n| n.0) {
                bad.push((name, max_abs(&f32_data(t))));
            }
        }
        for (n, p) in graph.node.iter().zip(&self.nodes) {
            if *p == Some(P::F16) && rule(op_of(n)).is_some_and(|r| r.kind == Kind::Source) {
                let name = n.output.first().cloned().unwrap_or_default();
                bad.push((name, max_abs(&f32_data(&source_value(n)))));
            }
        }
        bad.retain(|(_, m)| *m > FP16_MAX);
        bad
    }
}

/// Writes the new node list: names of each float value in fp16 and fp32, casts made on demand.
struct Emitter {
    used: HashSet<String>,
    forms: HashMap<String, [Option<String>; 2]>,
    nodes: Vec<NodeProto>,
}

impl Emitter {
    /// Every value and node name of `graph` is taken.
    fn new(graph: &GraphProto, types: &HashMap<String, i32>) -> Emitter {
        let mut used: HashSet<String> = types.keys().cloned().collect();
        used.extend(graph.node.iter().filter_map(|n| n.name.clone()));
        Emitter {
            used,
            forms: HashMap::new(),
            nodes: Vec::new(),
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut k = 1;
        while !self.used.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    fn set(&mut self, v: &str, p: P, name: String) {
        self.forms.entry(v.to_owned()).or_default()[p as usize] = Some(name);
    }

    fn cast(&mut self, from: &str, to: &str, p: P) {
        let name = self.fresh(&format!("{to}/cast"));
        self.nodes.push(cast_node(name, from, to, p.code()));
    }

    /// `v` in precision `p`, cast from the other form on first use (non-float values as they are).
    fn get(&mut self, v: &str, p: P) -> String {
        let Some(forms) = self.forms.get(v) else {
            return v.to_owned();
        };
        if let Some(name) = &forms[p as usize] {
            return name.clone();
        }
        let from = forms[1 - (p as usize)].clone().unwrap_or_default();
        let suffix = if p == P::F16 { "fp16" } else { "fp32" };
        let name = self.fresh(&format!("{v}_{suffix}"));
        self.cast(&from, &name, p);
        self.set(v, p, name.clone());
        name
    }

    /// Whichever form exists (fp16 first).
    fn any(&self, v: &str) -> String {
        match self.forms.get(v) {
            Some([Some(h), _]) => h.clone(),
            Some([None, Some(f)]) => f.clone(),
            _ => v.to_owned(),
        }
    }
}

fn cast_node(name: String, from: &str, to: &str, code: i32) -> NodeProto {
    NodeProto {
        input: vec![from.to_owned()],
        output: vec![to.to_owned()],
        name: Some(name),
        op_type: Some("Cast".into()),
        attribute: vec![AttributeProto {
            name: Some("to".into()),
            r#type: Some(proto::attr_type::INT),
            i: Some(code as i64),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The value of a float `Constant` / `ConstantOfShape` as a float32 tensor (`value_float(s)`
/// and ConstantOfShape's default, one 0.0, included).
fn source_value(n: &NodeProto) -> TensorProto {
    let floats = |data: Vec<f32>, dims| TensorProto {
        dims,
        data_type: Some(proto::DT_FLOAT),
        float_data: data,
        ..Default::default()
    };
    match n.attribute.first() {
        Some(AttributeProto { t: Some(t), .. }) => t.clone(),
        Some(AttributeProto { f: Some(f), .. }) => floats(vec![*f], vec![]),
        Some(a) => floats(a.floats.clone(), vec![a.floats.len() as i64]),
        None => floats(vec![0.0], vec![1]),
    }
}

/// The graph of `model` with fp16 weights and activations and fp32 inputs and outputs; ops whose
/// type is in `keep_fp32` compute in fp32 ([`KEEP_FP32`] is the package's choice). See the
/// module documentation for what happens to each kind of op. Errors name the node or initializer:
/// an op without an fp16 rule, a custom operator, a graph that is not float32, or float constants
/// beyond fp16's range ([`out_of_range`]).
pub fn to_fp16(model: &ModelProto, keep_fp32: &[&str]) -> Result<ModelProto, GraphError> {
    let empty = GraphProto::default();
    let graph = model.graph.as_ref().unwrap_or(&empty);
    let plan = Plan::new(graph, keep_fp32)?;
    let bad = plan.out_of_range(graph);
    if !bad.is_empty() {
        let list: Vec<String> = bad
            .iter()
            .map(|(n, m)| format!("`{n}` (|x| up to {m:e})"))
            .collect();
        return Err(GraphError::invalid(format!(
            "fp16: {} constant(s) exceed fp16's range ±{FP16_MAX} and would become infinite: {}",
            bad.len(),
            list.join(", ")
        )));
    }
    let is_float = |v: &str| plan.types.get(v) == Some(&proto::DT_FLOAT);
    let mut e = Emitter::new(graph, &plan.types);
    for v in graph.input.iter().filter_map(|v| v.name.as_deref()) {
        if is_float(v) {
            e.set(v, P::F32, v.to_owned());
        }
    }
    let mut initializers = Vec::new();
    for t in &graph.initializer {
        let name = t.name.clone().unwrap_or_default();
        match plan.init_needs.get(&name) {
            Some(&(true, false)) => {
                initializers.push(narrow(t));
                e.set(&name, P::F16, name.clone());
            }
            Some(&(half, _)) => {
                initializers.push(t.clone());
                e.set(&name, P::F32, name.clone());
                if half {
                    let copy = e.fresh(&format!("{name}_fp16"));
                    initializers.push(TensorProto {
                        name: Some(copy.clone()),
                        ..narrow(t)
                    });
                    e.set(&name, P::F16, copy);
                }
            }
            None => initializers.push(t.clone()),
        }
    }
    let outputs: HashSet<&str> = graph
        .output
        .iter()
        .filter_map(|o| o.name.as_deref())
        .collect();
    for (n, &p) in graph.node.iter().zip(&plan.nodes) {
        let rule = rule_of(n)?;
        let mut node = n.clone();
        for (i, v) in node.input.iter_mut().enumerate() {
            *v = match (rule.role(i), p) {
                _ if v.is_empty() => String::new(),
                (Role::Data, Some(p)) => e.get(v, p),
                (Role::Fixed, _) | (Role::Data, None) => e.get(v, P::F32),
                (Role::Any, _) => e.any(v),
            };
        }
        let Some(p) = p else {
            e.nodes.push(node);
            continue;
        };
        match rule.kind {
            // Opset 17's Cast has one attribute, `to`.
            Kind::Cast if p == P::F16 => {
                node.attribute = cast_node(String::new(), "", "", DT_FLOAT16).attribute;
            }
            Kind::Source if p == P::F16 => {
                node.attribute = vec![AttributeProto {
                    name: Some("value".into()),
                    r#type: Some(proto::attr_type::TENSOR),
                    t: Some(narrow(&source_value(n))),
                    ..Default::default()
                }];
            }
            _ => {}
        }
        let mut after = Vec::new();
        for (i, o) in node.output.iter_mut().enumerate() {
            if !is_float(o) {
                continue;
            }
            let q = if op_of(n) == "LayerNormalization" && i > 0 {
                P::F32
            } else {
                p
            };
            let orig = o.clone();
            if q == P::F16 && outputs.contains(orig.as_str()) {
                *o = e.fresh(&format!("{orig}_fp16"));
                after.push((o.clone(), orig.clone()));
                e.set(&orig, P::F32, orig.clone());
            }
            e.set(&orig, q, o.clone());
        }
        e.nodes.push(node);
        for (from, to) in after {
            e.cast(&from, &to, P::F32);
        }
    }
    let mut out = with_graph(model, rebuilt(graph, e.nodes, initializers));
    out.metadata_props.push(proto::StringStringEntryProto {
        key: Some("iplap.fp32_ops".into()),
        value: Some(keep_fp32.join(",")),
    });
    Ok(out)
}

/// [`to_fp16`] on `.onnx` bytes, with [`KEEP_FP32`]: the package's fp16 stage file.
pub fn to_fp16_bytes(model: &ModelProto) -> Result<Vec<u8>, GraphError> {
    Ok(to_fp16(model, &KEEP_FP32)?.encode_to_vec())
}
