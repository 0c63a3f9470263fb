import { Background, Handle, Position, ReactFlow, type Edge, type Node, type NodeProps } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import type { TimelineEntry } from "../api";

export interface PinnedDag {
  nodes: { id: string; type: string }[];
  edges: { source: string; target: string; condition?: string | null }[];
}

type State = TimelineEntry["status"] | "not run";
type GraphNode = Node<{ type: string; state: State }, "state">;

function StateNode({ id, data }: NodeProps<GraphNode>) {
  return (
    <div className={`graph-node graph-${data.state.replace(" ", "-")}`} data-testid={`graph-node-${id}`} data-state={data.state}>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <strong>{id}</strong>
      <span>{data.type}</span>
      <span>{data.state}</span>
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </div>
  );
}

const nodeTypes = { state: StateNode };

/** Columns by the longest path from a node without inputs: each node right of all it waits on. */
function depths(dag: PinnedDag): Map<string, number> {
  const depth = new Map(dag.nodes.map((node) => [node.id, 0]));
  for (let pass = 0; pass < dag.nodes.length; pass += 1) {
    let moved = false;
    for (const edge of dag.edges) {
      const next = (depth.get(edge.source) ?? 0) + 1;
      if (depth.has(edge.target) && next > (depth.get(edge.target) ?? 0)) {
        depth.set(edge.target, next);
        moved = true;
      }
    }
    if (!moved) break;
  }
  return depth;
}

/** A DAG run's graph as pinned at its start, each node coloured by what its steps did. */
export function DagGraph({ dag, timeline }: { dag: PinnedDag; timeline: TimelineEntry[] }) {
  const states = new Map<string, State>();
  for (const entry of timeline) if (entry.node) states.set(entry.node, entry.status);
  const depth = depths(dag);
  const rows = new Map<number, number>();
  const nodes: GraphNode[] = dag.nodes.map((node) => {
    const column = depth.get(node.id) ?? 0;
    const row = rows.get(column) ?? 0;
    rows.set(column, row + 1);
    return {
      id: node.id,
      type: "state",
      position: { x: column * 230, y: row * 100 },
      data: { type: node.type, state: states.get(node.id) ?? "not run" },
      draggable: false,
    };
  });
  const edges: Edge[] = dag.edges.map((edge) => ({
    id: `${edge.source}->${edge.target}`,
    source: edge.source,
    target: edge.target,
    label: edge.condition ?? undefined,
  }));
  return (
    <figure className="dag-graph">
      <div className="dag-canvas">
        <ReactFlow nodes={nodes} edges={edges} nodeTypes={nodeTypes} fitView nodesConnectable={false} elementsSelectable={false}>
          <Background />
        </ReactFlow>
      </div>
      <figcaption>
        Graph: {dag.nodes.length} node(s); {[...states.values()].filter((s) => s === "completed").length} completed
      </figcaption>
    </figure>
  );
}

export default DagGraph;
