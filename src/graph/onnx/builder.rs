//! [`GraphBuilder`] core: graph inputs and outputs, initializers, unique names, generic nodes, and
//! the finished [`OnnxModel`]. Typed operator helpers live in `ops.rs` and weight-bearing layers
//! in `layers.rs` (both are further `impl GraphBuilder` blocks).

use std::collections::HashSet;
use std::path::Path;

use prost::Message;

use super::proto::{self, attr_type};
use super::spec::{DType, Dim, TensorSpec};
use crate::graph::GraphError;

/// ONNX operator set the builder targets (`ai.onnx` domain).
pub const OPSET: i64 = 17;
/// ONNX IR version written into every model (IR 8 goes with opset 17).
pub const IR_VERSION: i64 = 8;

/// A handle to a value (tensor) in the graph being built. Cheap to clone; only meaningful for the
/// [`GraphBuilder`] that returned it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value(String);

impl Value {
    /// The value's unique name in the graph.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// An operator attribute for [`GraphBuilder::node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRING`.
    Str(String),
}

impl Attr {
    fn to_proto(&self, name: &str) -> proto::AttributeProto {
        let mut a = proto::AttributeProto {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        match self {
            Attr::Int(v) => {
                a.r#type = Some(attr_type::INT);
                a.i = Some(*v);
            }
            Attr::Float(v) => {
                a.r#type = Some(attr_type::FLOAT);
                a.f = Some(*v);
            }
            Attr::Ints(v) => {
                a.r#type = Some(attr_type::INTS);
                a.ints = v.clone();
            }
            Attr::Floats(v) => {
                a.r#type = Some(attr_type::FLOATS);
                a.floats = v.clone();
            }
            Attr::Str(v) => {
                a.r#type = Some(attr_type::STRING);
                a.s = Some(v.as_bytes().to_vec());
            }
        }
        a
    }
}

/// Builds one ONNX graph; see the [module documentation](super) for an example.
///
/// Every method that adds something returns a [`Value`] for its output. Names are made unique
/// automatically from a hint and the current scope ([`GraphBuilder::push_scope`]); graph inputs and
/// outputs keep exactly the names given.
#[derive(Debug)]
pub struct GraphBuilder {
    name: String,
    scopes: Vec<String>,
    used: HashSet<String>,
    defined: HashSet<String>,
    nodes: Vec<proto::NodeProto>,
    initializers: Vec<proto::TensorProto>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    metadata: Vec<(String, String)>,
    doc: Option<String>,
    /// Custom operator domains used (imported at version 1).
    custom_domains: std::collections::BTreeSet<String>,
}

impl GraphBuilder {
    /// Starts an empty graph called `name` (also the model's graph name in the file).
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            name: name.to_owned(),
            scopes: Vec::new(),
            used: HashSet::new(),
            defined: HashSet::new(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            metadata: Vec::new(),
            doc: None,
            custom_domains: Default::default(),
        }
    }

    /// Sets the model's doc string.
    pub fn set_doc(&mut self, doc: &str) {
        self.doc = Some(doc.to_owned());
    }

    /// Adds a model metadata entry (`metadata_props`), visible to ONNX Runtime's model metadata.
    pub fn add_metadata(&mut self, key: &str, value: &str) {
        self.metadata.push((key.to_owned(), value.to_owned()));
    }

    /// Enters a naming scope: values and weights created until [`GraphBuilder::pop_scope`] are
    /// named `outer/inner/hint`. Purely cosmetic (helps reading the graph in Netron).
    pub fn push_scope(&mut self, scope: &str) {
        self.scopes.push(scope.to_owned());
    }

    /// Leaves the innermost naming scope (no-op at top level).
    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    /// A fresh name built from the scope and `hint`, never returned before by this builder.
    pub fn unique_name(&mut self, hint: &str) -> String {
        let mut base = self.scopes.join("/");
        if !base.is_empty() {
            base.push('/');
        }
        base.push_str(hint);
        let mut name = base.clone();
        let mut k = 1usize;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    fn claim_exact(&mut self, name: &str) -> Result<(), GraphError> {
        if !self.used.insert(name.to_owned()) {
            return Err(GraphError::invalid(format!(
                "name `{name}` is already used in graph `{}`",
                self.name
            )));
        }
        Ok(())
    }

    /// Declares a graph input with exactly this name, element type and shape.
    pub fn input(&mut self, name: &str, dtype: DType, shape: &[Dim]) -> Result<Value, GraphError> {
        self.claim_exact(name)?;
        self.defined.insert(name.to_owned());
        self.inputs.push(TensorSpec {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
        });
        Ok(Value(name.to_owned()))
    }

    /// Declares a float32 graph input with fixed dims.
    pub fn input_f32(&mut self, name: &str, shape: &[usize]) -> Result<Value, GraphError> {
        self.input(name, DType::Float32, &Dim::fixed(shape))
    }

    /// Marks `value` as a graph output called `name` with the given type and shape. When the value
    /// has another name an `Identity` node is added, so any value can be exposed under any name
    /// (also several times, e.g. an intermediate and the final output).
    pub fn output(
        &mut self,
        value: &Value,
        name: &str,
        dtype: DType,
        shape: &[Dim],
    ) -> Result<(), GraphError> {
        self.check_defined(value)?;
        if value.name() != name {
            self.claim_exact(name)?;
            let node_name = self.unique_name(&format!("{name}_identity"));
            self.push_node(node_name, "Identity", &[value], vec![name.to_owned()], &[]);
            self.defined.insert(name.to_owned());
        } else if self.outputs.iter().any(|o| o.name == name) {
            return Err(GraphError::invalid(format!(
                "`{name}` is already a graph output"
            )));
        }
        self.outputs.push(TensorSpec {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
        });
        Ok(())
    }

    /// Marks `value` as a float32 graph output with fixed dims (see [`GraphBuilder::output`]).
    pub fn output_f32(
        &mut self,
        value: &Value,
        name: &str,
        shape: &[usize],
    ) -> Result<(), GraphError> {
        self.output(value, name, DType::Float32, &Dim::fixed(shape))
    }

    /// Adds a float32 initializer (a constant weight) with the given shape; `data` is row-major.
    pub fn initializer_f32(
        &mut self,
        hint: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<Value, GraphError> {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer_raw(hint, shape, proto::DT_FLOAT, data.len(), raw)
    }

    /// Adds an int64 initializer (shapes, axes, indices); `data` is row-major.
    pub fn initializer_i64(
        &mut self,
        hint: &str,
        shape: &[usize],
        data: &[i64],
    ) -> Result<Value, GraphError> {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer_raw(hint, shape, proto::DT_INT64, data.len(), raw)
    }

    /// Checks that `len` values fill `shape`, then stores the little-endian bytes under a unique name.
    fn initializer_raw(
        &mut self,
        hint: &str,
        shape: &[usize],
        dtype: i32,
        len: usize,
        raw: Vec<u8>,
    ) -> Result<Value, GraphError> {
        let numel: usize = shape.iter().product();
        if numel != len {
            return Err(GraphError::invalid(format!(
                "initializer `{hint}`: shape {shape:?} needs {numel} values, got {len}"
            )));
        }
        let name = self.unique_name(hint);
        self.push_initializer(&name, dtype, shape, raw);
        Ok(Value(name))
    }

    /// A 1-D int64 constant (the usual form of shapes, axes and indices).
    pub fn const_i64(&mut self, hint: &str, data: &[i64]) -> Value {
        let name = self.unique_name(hint);
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push_initializer(&name, proto::DT_INT64, &[data.len()], raw);
        Value(name)
    }

    /// A float32 scalar constant (rank 0), broadcastable against anything.
    pub fn scalar_f32(&mut self, hint: &str, v: f32) -> Value {
        let name = self.unique_name(hint);
        self.push_initializer(&name, proto::DT_FLOAT, &[], v.to_le_bytes().to_vec());
        Value(name)
    }

    fn push_initializer(&mut self, name: &str, data_type: i32, shape: &[usize], raw: Vec<u8>) {
        self.defined.insert(name.to_owned());
        self.initializers.push(proto::TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(data_type),
            name: Some(name.to_owned()),
            raw_data: Some(raw),
            ..Default::default()
        });
    }

    fn check_defined(&self, v: &Value) -> Result<(), GraphError> {
        if self.defined.contains(v.name()) {
            Ok(())
        } else {
            Err(GraphError::invalid(format!(
                "value `{}` is not defined in graph `{}` (a Value from another builder?)",
                v.name(),
                self.name
            )))
        }
    }

    fn push_node(
        &mut self,
        name: String,
        op: &str,
        inputs: &[&Value],
        outputs: Vec<String>,
        attrs: &[(&str, Attr)],
    ) {
        self.push_node_in(None, name, op, inputs, outputs, attrs);
    }

    fn push_node_in(
        &mut self,
        domain: Option<&str>,
        name: String,
        op: &str,
        inputs: &[&Value],
        outputs: Vec<String>,
        attrs: &[(&str, Attr)],
    ) {
        self.nodes.push(proto::NodeProto {
            input: inputs.iter().map(|v| v.0.clone()).collect(),
            output: outputs,
            name: Some(name),
            op_type: Some(op.to_owned()),
            domain: domain.map(str::to_owned),
            attribute: attrs.iter().map(|(n, a)| a.to_proto(n)).collect(),
            doc_string: None,
        });
    }

    /// Adds any `ai.onnx` operator with one output: the escape hatch for operators that have no
    /// typed helper. Inputs are positional; pass optional inputs you skip by leaving them off the
    /// end (ONNX allows trailing optional inputs to be omitted).
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&Value],
        attrs: &[(&str, Attr)],
    ) -> Result<Value, GraphError> {
        let mut out = self.node_multi(op, inputs, 1, attrs)?;
        out.pop()
            .ok_or_else(|| GraphError::invalid(format!("{op}: no output")))
    }

    /// Like [`GraphBuilder::node`] with `n_outputs` outputs (e.g. `Split`).
    pub fn node_multi(
        &mut self,
        op: &str,
        inputs: &[&Value],
        n_outputs: usize,
        attrs: &[(&str, Attr)],
    ) -> Result<Vec<Value>, GraphError> {
        for v in inputs {
            self.check_defined(v)?;
        }
        let base = self.unique_name(op);
        let outputs: Vec<String> = (0..n_outputs)
            .map(|i| {
                if n_outputs == 1 {
                    base.clone()
                } else {
                    format!("{base}:{i}")
                }
            })
            .collect();
        for o in &outputs {
            self.used.insert(o.clone());
            self.defined.insert(o.clone());
        }
        self.push_node(base, op, inputs, outputs.clone(), attrs);
        Ok(outputs.into_iter().map(Value).collect())
    }

    /// Adds an operator of a custom domain (one output, version 1 of the domain), e.g. iplap's
    /// own `ai.iplap` operators that only iplap's sessions can run.
    pub fn custom_node(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&Value],
    ) -> Result<Value, GraphError> {
        for v in inputs {
            self.check_defined(v)?;
        }
        let name = self.unique_name(op);
        self.used.insert(name.clone());
        self.defined.insert(name.clone());
        self.custom_domains.insert(domain.to_owned());
        self.push_node_in(
            Some(domain),
            name.clone(),
            op,
            inputs,
            vec![name.clone()],
            &[],
        );
        Ok(Value(name))
    }

    /// Number of nodes added so far.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Finishes the graph. Fails when no output was declared.
    pub fn finish(self) -> Result<OnnxModel, GraphError> {
        if self.outputs.is_empty() {
            return Err(GraphError::invalid(format!(
                "graph `{}` has no outputs",
                self.name
            )));
        }
        let graph = proto::GraphProto {
            node: self.nodes,
            name: Some(self.name.clone()),
            initializer: self.initializers,
            doc_string: None,
            input: self.inputs.iter().map(TensorSpec::value_info).collect(),
            output: self.outputs.iter().map(TensorSpec::value_info).collect(),
            value_info: Vec::new(),
        };
        let proto = proto::ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: std::iter::once(proto::OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            })
            .chain(
                self.custom_domains
                    .iter()
                    .map(|d| proto::OperatorSetIdProto {
                        domain: Some(d.clone()),
                        version: Some(1),
                    }),
            )
            .collect(),
            producer_name: Some("iplap".to_owned()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            domain: None,
            model_version: Some(1),
            doc_string: self.doc,
            graph: Some(graph),
            metadata_props: self
                .metadata
                .into_iter()
                .map(|(k, v)| proto::StringStringEntryProto {
                    key: Some(k),
                    value: Some(v),
                })
                .collect(),
        };
        Ok(OnnxModel {
            proto,
            inputs: self.inputs,
            outputs: self.outputs,
        })
    }
}

/// A finished ONNX model and its I/O contract.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    proto: proto::ModelProto,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl OnnxModel {
    /// The serialised `.onnx` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Writes the `.onnx` file.
    pub fn write(&self, path: &Path) -> Result<(), GraphError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| GraphError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Graph inputs, in declaration order.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// Graph outputs, in declaration order.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// The underlying protobuf message (for inspection and tests).
    pub fn proto(&self) -> &proto::ModelProto {
        &self.proto
    }
}
