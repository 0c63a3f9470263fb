import {
  addEdge,
  Background,
  Controls,
  Handle,
  Position,
  ReactFlow,
  ReactFlowProvider,
  useEdgesState,
  useNodesState,
  useReactFlow,
  type Connection,
  type Edge,
  type Node,
  type NodeProps,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useCallback, useMemo, useState, type DragEvent } from "react";
import { ApiError, call, path } from "../api";
import { usePolled } from "../poll";
import { runHref } from "../route";

interface NodeType {
  name: string;
  kind: "pure" | "io" | "in_workflow" | "activity";
  description: string;
  dagNode: boolean;
  queues: string[];
}

/** What a DAG node holds while it is edited (the gateway's DagNode, plus the problem it named). */
interface StepData extends Record<string, unknown> {
  type: string;
  input: string;
  maximumAttempts: string;
  timeoutSeconds: string;
  queue: string;
  problem?: string;
}

type Step = Node<StepData, "step">;

const DRAG_TYPE = "application/x-ledgerflow-node-type";

function StepNode({ id, data, selected }: NodeProps<Step>) {
  return (
    <div className={`step${selected ? " step-selected" : ""}${data.problem ? " step-problem" : ""}`} data-testid={`node-${id}`}>
      <Handle type="target" position={Position.Left} />
      <strong>{id}</strong>
      <span className="muted">{data.type}</span>
      {data.problem && (
        <span className="step-error" role="alert">
          {data.problem}
        </span>
      )}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

const nodeTypes = { step: StepNode };

/** The DAG as the gateway registers it, or the problems that keep it from being one. */
function definitionOf(id: string, name: string, nodes: Step[], edges: Edge[]) {
  const problems: string[] = [];
  const dagNodes = nodes.map((node) => {
    let input: unknown = {};
    if (node.data.input.trim()) {
      try {
        input = JSON.parse(node.data.input);
      } catch {
        problems.push(`node '${node.id}': its input is not JSON`);
      }
    }
    const step: Record<string, unknown> = { id: node.id, type: node.data.type, input };
    if (node.data.maximumAttempts) step.retry = { maximum_attempts: Number(node.data.maximumAttempts) };
    if (node.data.timeoutSeconds) step.timeoutSeconds = Number(node.data.timeoutSeconds);
    if (node.data.queue) step.queue = node.data.queue;
    return step;
  });
  const dagEdges = edges.map((edge) => ({ source: edge.source, target: edge.target }));
  return { definition: { id, name, nodes: dagNodes, edges: dagEdges }, problems };
}

/** Each problem the gateway named, on the node it names (``nodes[i]...`` or 'node id' in its text). */
function placeProblems(error: ApiError, nodes: Step[]): { byNode: Map<string, string>; rest: string[] } {
  const byNode = new Map<string, string>();
  const rest: string[] = [];
  const body = error.body as { errors?: { field?: string; message?: string }[] } | null;
  const problems = body?.errors?.length ? body.errors : [{ field: "", message: error.detail }];
  for (const problem of problems) {
    const message = problem.message ?? "";
    const indexed = /^nodes\[(\d+)\]/.exec(problem.field ?? "");
    let node = indexed ? nodes[Number(indexed[1])]?.id : undefined;
    node ??= nodes.find((n) => message.includes(`'${n.id}'`))?.id;
    if (node) byNode.set(node, [byNode.get(node), message].filter(Boolean).join("; "));
    else rest.push(`${problem.field ? `${problem.field}: ` : ""}${message}`);
  }
  return { byNode, rest };
}

function Canvas() {
  const types = usePolled(() => call<{ nodeTypes: NodeType[] }>("GET", "/node-types"), 0, []);
  const [nodes, setNodes, onNodesChange] = useNodesState<Step>([]);
  const [edges, setEdges, onEdgesChange] = useEdgesState<Edge>([]);
  const [dagId, setDagId] = useState("");
  const [name, setName] = useState("");
  const [runInput, setRunInput] = useState("{}");
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [saved, setSaved] = useState(false);
  const flow = useReactFlow();
  const selected = nodes.find((node) => node.selected);
  const palette = useMemo(() => (types.data?.nodeTypes ?? []).filter((t) => t.dagNode), [types.data]);

  const add = useCallback(
    (type: string, position: { x: number; y: number }) => {
      setNodes((current) => {
        // an identifier: expressions name it (``{{ nodes.sequence_numbers_1.output }}``)
        const base = type.replace(/[^A-Za-z0-9]+/g, "_").replace(/_+$/, "");
        let n = 1;
        while (current.some((node) => node.id === `${base}_${n}`)) n += 1;
        const step: Step = {
          id: `${base}_${n}`,
          type: "step",
          position,
          data: { type, input: "{}", maximumAttempts: "", timeoutSeconds: "", queue: "" },
        };
        return [...current.map((node) => ({ ...node, selected: false })), { ...step, selected: true }];
      });
      setSaved(false);
    },
    [setNodes],
  );

  const onDrop = useCallback(
    (event: DragEvent) => {
      event.preventDefault();
      const type = event.dataTransfer.getData(DRAG_TYPE);
      if (type) add(type, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
    },
    [add, flow],
  );

  const update = (id: string, patch: Partial<StepData>) => {
    setNodes((current) =>
      current.map((node) => (node.id === id ? { ...node, data: { ...node.data, ...patch, problem: undefined } } : node)),
    );
    setSaved(false);
  };

  async function save(): Promise<boolean> {
    const { definition, problems } = definitionOf(dagId.trim(), name, nodes, edges);
    if (problems.length) {
      setMessage({ ok: false, text: problems.join("; ") });
      return false;
    }
    try {
      await call("POST", "/workflows", definition);
      setNodes((current) => current.map((node) => ({ ...node, data: { ...node.data, problem: undefined } })));
      setMessage({ ok: true, text: `registered ${definition.id}: ${nodes.length} nodes, ${edges.length} edges` });
      setSaved(true);
      return true;
    } catch (err) {
      if (!(err instanceof ApiError)) {
        setMessage({ ok: false, text: (err as Error).message });
        return false;
      }
      const { byNode, rest } = placeProblems(err, nodes);
      setNodes((current) => current.map((node) => ({ ...node, data: { ...node.data, problem: byNode.get(node.id) } })));
      setMessage({ ok: false, text: `not registered: ${[...rest, ...(byNode.size ? [`${byNode.size} node(s) marked`] : [])].join("; ")}` });
      return false;
    }
  }

  async function start() {
    if (!saved && !(await save())) return;
    let input: unknown;
    try {
      input = JSON.parse(runInput || "null");
    } catch {
      setMessage({ ok: false, text: "the run's input is not JSON" });
      return;
    }
    try {
      const started = await call<{ workflowId: string }>("POST", `/workflows/${path(dagId.trim())}/execute`, { input });
      location.hash = runHref(started.workflowId);
    } catch (err) {
      setMessage({ ok: false, text: `not started: ${(err as Error).message}` });
    }
  }

  return (
    <div className="editor">
      <aside className="palette" aria-label="Node types">
        <h1>DAG editor</h1>
        <h2>Node types</h2>
        {types.error && <p role="alert" className="error">{types.error.message}</p>}
        <ul>
          {palette.map((type) => (
            <li
              key={type.name}
              draggable
              onDragStart={(event) => {
                event.dataTransfer.setData(DRAG_TYPE, type.name);
                event.dataTransfer.effectAllowed = "move";
              }}
              data-testid={`palette-${type.name}`}
              title={type.description}
            >
              <span>{type.name}</span>
              <button type="button" aria-label={`Add ${type.name}`} onClick={() => add(type.name, { x: 40 + nodes.length * 30, y: 40 + nodes.length * 60 })}>
                +
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <section className="canvas" aria-label="DAG canvas" onDrop={onDrop} onDragOver={(event) => event.preventDefault()}>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          onNodesChange={(changes) => {
            onNodesChange(changes);
            if (changes.some((change) => change.type === "remove" || change.type === "add")) setSaved(false);
          }}
          onEdgesChange={(changes) => {
            onEdgesChange(changes);
            setSaved(false);
          }}
          onConnect={(connection: Connection) => {
            setEdges((current) => addEdge({ ...connection, id: `${connection.source}->${connection.target}` }, current));
            setSaved(false);
          }}
          defaultViewport={{ x: 0, y: 0, zoom: 1 }}
        >
          <Background />
          <Controls />
        </ReactFlow>
      </section>
      <aside className="inspector" aria-label="DAG and node settings">
        <h2>DAG</h2>
        <label>
          DAG id
          <input value={dagId} onChange={(e) => { setDagId(e.target.value); setSaved(false); }} required />
        </label>
        <label>
          Name
          <input value={name} onChange={(e) => { setName(e.target.value); setSaved(false); }} />
        </label>
        <p className="muted">
          {nodes.length} node(s), {edges.length} edge(s)
        </p>
        <button type="button" onClick={save} disabled={!dagId.trim() || nodes.length === 0}>
          Save (register)
        </button>
        <label>
          Run input (JSON)
          <textarea value={runInput} onChange={(e) => setRunInput(e.target.value)} rows={3} />
        </label>
        <button type="button" onClick={start} disabled={!dagId.trim() || nodes.length === 0}>
          Start a run
        </button>
        {message && (
          <p role="status" className={message.ok ? "ok" : "error"}>
            {message.text}
          </p>
        )}
        {selected && (
          <fieldset className="node-form">
            <legend>
              Node <code>{selected.id}</code> ({selected.data.type})
            </legend>
            <label>
              Node input (JSON; strings may hold {"{{ input.x }}"} or {"{{ nodes.id.output }}"})
              <textarea
                value={selected.data.input}
                onChange={(e) => update(selected.id, { input: e.target.value })}
                rows={5}
              />
            </label>
            <label>
              Maximum attempts
              <input type="number" min={1} value={selected.data.maximumAttempts} onChange={(e) => update(selected.id, { maximumAttempts: e.target.value })} />
            </label>
            <label>
              Timeout (seconds)
              <input type="number" min={0} step="any" value={selected.data.timeoutSeconds} onChange={(e) => update(selected.id, { timeoutSeconds: e.target.value })} />
            </label>
            <label>
              Task queue
              <input value={selected.data.queue} onChange={(e) => update(selected.id, { queue: e.target.value })} placeholder="default" />
            </label>
            <label>
              Connect to (runs after this node)
              <select
                value=""
                onChange={(e) => {
                  const target = e.target.value;
                  if (!target) return;
                  setEdges((current) => addEdge({ source: selected.id, target, id: `${selected.id}->${target}` }, current));
                  setSaved(false);
                }}
              >
                <option value="">choose a node…</option>
                {nodes
                  .filter((node) => node.id !== selected.id && !edges.some((e) => e.source === selected.id && e.target === node.id))
                  .map((node) => (
                    <option key={node.id}>{node.id}</option>
                  ))}
              </select>
            </label>
            {selected.data.problem && <p className="error">{selected.data.problem}</p>}
          </fieldset>
        )}
      </aside>
    </div>
  );
}

/** A DAG drawn from a palette of node types, registered with the gateway, and started. */
export function Editor() {
  return (
    <ReactFlowProvider>
      <Canvas />
    </ReactFlowProvider>
  );
}
