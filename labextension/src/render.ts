/**
 * Pure DOM rendering of the server's answers: no JupyterLab imports, so jest tests it
 * directly and the dialog stays a thin wrapper.
 */
import { cellNumber } from './roles';
import {
  ICellRole,
  IConversion,
  IErrorReply,
  IFinding,
  IInspection,
  IJob,
  IJSONSchema,
  ILocation,
  IParameter
} from './types';

/** The CSS class prefix of every element this module creates. */
export const CSS = 'jp-Promoter';

type Child = Node | string | null | undefined | false;

/** Create an element with classes and children (`null`/`false` children are skipped). */
export function h(
  tag: string,
  className: string | null,
  ...children: Child[]
): HTMLElement {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.append(child);
  }
  return node;
}

/**
 * A notebook location as one readable phrase: "nb.ipynb, cell 3 (id ab12), line 2". Cells are
 * numbered as JupyterLab's status bar numbers them (1-based); the server's `cell_index` is 0-based.
 */
export function formatLocation(loc: ILocation): string {
  const parts: string[] = [];
  if (loc.notebook) {
    parts.push(loc.notebook);
  }
  if (loc.cell_index !== null && loc.cell_index !== undefined) {
    const n = cellNumber(loc.cell_index);
    parts.push(loc.cell_id ? `cell ${n} (id ${loc.cell_id})` : `cell ${n}`);
  }
  if (loc.line !== null && loc.line !== undefined) {
    parts.push(`line ${loc.line}`);
  }
  return parts.join(', ');
}

/** A parameter default as Python-reader-friendly JSON (strings quoted, `null` kept). */
export function formatDefault(value: unknown): string {
  if (value === undefined) {
    return '';
  }
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text;
}

function section(title: string, name: string, ...body: Child[]): HTMLElement {
  return h(
    'section',
    `${CSS}-section ${CSS}-${name}`,
    h('h3', `${CSS}-sectionTitle`, title),
    ...body
  );
}

function table(
  name: string,
  headers: string[],
  rows: Child[][]
): HTMLTableElement {
  const head = h(
    'thead',
    null,
    h('tr', null, ...headers.map(text => h('th', null, text)))
  );
  const body = h(
    'tbody',
    null,
    ...rows.map(row => h('tr', null, ...row.map(cell => h('td', null, cell))))
  );
  return h(
    'table',
    `${CSS}-table ${CSS}-${name}`,
    head,
    body
  ) as HTMLTableElement;
}

/** The request fields as a table: name, type, default, description. */
export function renderParameters(parameters: IParameter[]): HTMLElement {
  if (parameters.length === 0) {
    return h(
      'p',
      `${CSS}-empty`,
      'No request fields: the `parameters` cell assigns no public names.'
    );
  }
  return table(
    'parameters',
    ['Name', 'Type', 'Default', 'Description'],
    parameters.map(p => [
      h('code', `${CSS}-name`, p.name),
      h('code', `${CSS}-type`, p.type),
      p.required
        ? h('span', `${CSS}-required`, 'required')
        : h('code', `${CSS}-default`, formatDefault(p.default)),
      p.description ?? ''
    ])
  );
}

function refName(ref: string): string {
  return ref.split('/').pop() ?? ref;
}

/** Follow a local `$ref` (`#/$defs/Name`) into the root schema's definitions. */
function deref(schema: IJSONSchema, root: IJSONSchema): IJSONSchema {
  let current = schema;
  const seen = new Set<string>();
  while (current.$ref && !seen.has(current.$ref)) {
    seen.add(current.$ref);
    const name = refName(current.$ref);
    const target = root.$defs?.[name] ?? root.definitions?.[name];
    if (!target) {
      break;
    }
    current = target;
  }
  return current;
}

/** A short type label for a schema: "integer", "list[number]", "Prediction | null", ... */
export function schemaType(
  schema: IJSONSchema,
  root: IJSONSchema = schema
): string {
  if (schema.$ref) {
    const target = deref(schema, root);
    return target.title ?? refName(schema.$ref);
  }
  const union = schema.anyOf ?? schema.oneOf;
  if (union) {
    return union.map(s => schemaType(s, root)).join(' | ');
  }
  if (schema.allOf && schema.allOf.length === 1) {
    return schemaType(schema.allOf[0], root);
  }
  if (schema.enum) {
    return schema.enum.map(v => JSON.stringify(v)).join(' | ');
  }
  if (schema.const !== undefined) {
    return JSON.stringify(schema.const);
  }
  const type = Array.isArray(schema.type)
    ? schema.type.join(' | ')
    : schema.type;
  if (type === 'array') {
    if (schema.prefixItems) {
      return `tuple[${schema.prefixItems.map(s => schemaType(s, root)).join(', ')}]`;
    }
    const items = Array.isArray(schema.items) ? schema.items[0] : schema.items;
    return items ? `list[${schemaType(items, root)}]` : 'list';
  }
  if (type === 'object' && !schema.properties) {
    const values = schema.additionalProperties;
    return typeof values === 'object'
      ? `dict[str, ${schemaType(values, root)}]`
      : 'object';
  }
  if (type) {
    return schema.format ? `${type} (${schema.format})` : type;
  }
  return schema.title ?? 'any';
}

/** A field under a schema: its name, its schema, and whether the parent requires it. */
type Field = [name: string, schema: IJSONSchema, required: boolean];

/** The fields nested under one schema: object properties, or an array's item object's. */
function childrenOf(schema: IJSONSchema, root: IJSONSchema): Field[] {
  const target = deref(schema, root);
  if (target.properties) {
    const required = new Set(target.required ?? []);
    return Object.entries(target.properties).map(([name, s]) => [
      name,
      s,
      required.has(name)
    ]);
  }
  const union = target.anyOf ?? target.oneOf;
  if (union) {
    const objects = union.filter(s => s.type !== 'null');
    return objects.length === 1 ? childrenOf(objects[0], root) : [];
  }
  const items = Array.isArray(target.items) ? target.items[0] : target.items;
  if (target.type === 'array' && items) {
    return childrenOf(items, root).map(([name, s, req]) => [
      `[ ].${name}`,
      s,
      req
    ]);
  }
  return [];
}

function schemaNode(
  [name, schema, required]: Field,
  root: IJSONSchema,
  depth: number
): HTMLElement {
  const description = schema.description ?? deref(schema, root).description;
  const children = depth < 8 ? childrenOf(schema, root) : [];
  return h(
    'li',
    `${CSS}-field`,
    h('code', `${CSS}-name`, name),
    h('span', `${CSS}-sep`, ': '),
    h('code', `${CSS}-type`, schemaType(schema, root)),
    !required && h('span', `${CSS}-optional`, ' optional'),
    description && h('span', `${CSS}-description`, ` — ${description}`),
    children.length > 0 &&
      h(
        'ul',
        `${CSS}-tree`,
        ...children.map(field => schemaNode(field, root, depth + 1))
      )
  );
}

/** A JSON schema as a field tree: one line per field with its type, nested objects indented. */
export function renderSchemaTree(schema: IJSONSchema): HTMLElement {
  const fields = childrenOf(schema, schema);
  if (fields.length === 0) {
    return h(
      'ul',
      `${CSS}-tree`,
      h('li', `${CSS}-field`, h('code', `${CSS}-type`, schemaType(schema)))
    );
  }
  return h(
    'ul',
    `${CSS}-tree`,
    ...fields.map(field => schemaNode(field, schema, 1))
  );
}

/** The response: its schema as a field tree, the sample value in a collapsed block. */
export function renderResponse(insp: IInspection): HTMLElement {
  const pretty = (value: unknown): HTMLElement =>
    h('pre', `${CSS}-json`, JSON.stringify(value, null, 2) ?? 'null');
  const seconds =
    typeof insp.kernel_seconds === 'number'
      ? ` in ${insp.kernel_seconds.toFixed(1)} s`
      : '';
  return h(
    'div',
    `${CSS}-responseBody`,
    insp.response_schema &&
      h(
        'p',
        `${CSS}-origin`,
        insp.response_type && h('code', `${CSS}-type`, insp.response_type),
        insp.response_type ? ', inferred' : 'Inferred',
        ` from the notebook run with its defaults${seconds}:`
      ),
    insp.response_schema
      ? renderSchemaTree(insp.response_schema)
      : h(
          'p',
          `${CSS}-empty`,
          'No response schema (the response cell has no value).'
        ),
    insp.sample_response !== undefined &&
      h(
        'details',
        `${CSS}-sample`,
        h('summary', null, 'Sample response'),
        pretty(insp.sample_response)
      ),
    insp.response_schema &&
      h(
        'details',
        `${CSS}-rawSchema`,
        h('summary', null, 'JSON schema'),
        pretty(insp.response_schema)
      )
  );
}

/**
 * The code cells and their roles: index, role badge, first line of source. Markdown and raw
 * cells never run, so they are counted, not listed.
 */
export function renderCells(cells: ICellRole[]): HTMLElement {
  const code = cells.filter(c => c.role !== 'markdown' && c.role !== 'raw');
  const others = cells.length - code.length;
  return h(
    'div',
    null,
    table(
      'cells',
      ['#', 'Role', 'First line'],
      code.map((c: ICellRole) => [
        String(cellNumber(c.index)),
        h('span', `${CSS}-role ${CSS}-role-${c.role}`, c.role),
        h('code', `${CSS}-preview`, c.source_preview)
      ])
    ),
    others > 0 &&
      h(
        'p',
        `${CSS}-empty`,
        `${others} markdown/raw cell${others === 1 ? '' : 's'} not listed (they never run).`
      )
  );
}

/** Warnings or dropped lines, each with its location. */
export function renderFindings(
  findings: IFinding[],
  kind: string
): HTMLElement {
  return h(
    'ul',
    `${CSS}-findings ${CSS}-${kind}`,
    ...findings.map(f => {
      const where = formatLocation({ ...f, notebook: null });
      return h(
        'li',
        null,
        where && h('span', `${CSS}-location`, `${where}: `),
        f.what && h('code', `${CSS}-what`, f.what),
        f.what && (f.why || f.message) ? ' — ' : null,
        f.message ?? f.why ?? null
      );
    })
  );
}

/** The output folder field; its value is what "Generate" sends as `out_dir`. */
export function renderOutDir(defaultOutDir: string): HTMLElement {
  const input = h('input', `${CSS}-outDir jp-mod-styled`) as HTMLInputElement;
  input.type = 'text';
  input.value = defaultOutDir;
  input.name = 'out_dir';
  input.spellcheck = false;
  input.setAttribute('aria-label', 'Output folder');
  return h(
    'label',
    `${CSS}-outDirLabel`,
    h('span', null, 'Output folder (relative to the Jupyter root)'),
    input
  );
}

/**
 * The whole dialog body for an inspection: endpoint, request fields, response, cells,
 * warnings, dropped lines, and the output folder input.
 */
export function renderInspection(
  insp: IInspection,
  defaultOutDir: string
): HTMLElement {
  const warnings = insp.warnings ?? [];
  const dropped = insp.dropped ?? [];
  return h(
    'div',
    `${CSS}-inspection`,
    h(
      'div',
      `${CSS}-scroll`,
      h(
        'p',
        `${CSS}-endpoint`,
        h('code', null, `POST ${insp.route}`),
        insp.summary ? ` — ${insp.summary}` : null
      ),
      insp.description && h('p', `${CSS}-description`, insp.description),
      section(
        'Request fields',
        'request',
        renderParameters(insp.parameters ?? [])
      ),
      section('Response', 'response', renderResponse(insp)),
      warnings.length > 0 &&
        section(
          `Warnings (${warnings.length})`,
          'warningsSection',
          renderFindings(warnings, 'warnings')
        ),
      dropped.length > 0 &&
        section(
          `Not promoted (${dropped.length})`,
          'droppedSection',
          renderFindings(dropped, 'dropped')
        ),
      section('Cell roles', 'cellsSection', renderCells(insp.cells ?? []))
    ),
    // Outside the scrolling part: the folder stays in view next to the "Generate" button.
    h('div', `${CSS}-output`, renderOutDir(defaultOutDir))
  );
}

/**
 * An error answer: its kind, the message, where in the notebook, and the hint. With `goToCell`,
 * an error that names a cell gets a "Go to cell" button calling it.
 */
export function renderError(
  err: IErrorReply,
  goToCell?: (loc: ILocation) => void
): HTMLElement {
  const where = formatLocation(err);
  const hasCell = err.cell_index !== null && err.cell_index !== undefined;
  let button: HTMLElement | null = null;
  if (goToCell && hasCell) {
    button = h(
      'button',
      `${CSS}-goToCell jp-Button jp-mod-styled jp-mod-accept`,
      `Go to cell ${cellNumber(err.cell_index as number)}`
    );
    button.addEventListener('click', () => goToCell(err));
  }
  return h(
    'div',
    `${CSS}-error`,
    err.error && h('p', `${CSS}-errorKind`, err.error),
    h('p', `${CSS}-errorMessage`, err.message),
    where && h('p', `${CSS}-location`, where),
    button,
    err.hint && h('p', `${CSS}-hint`, `Hint: ${err.hint}`),
    err.paths &&
      err.paths.length > 0 &&
      h(
        'ul',
        `${CSS}-paths`,
        ...err.paths.map(p => h('li', null, h('code', null, p)))
      )
  );
}

/** What "Generate" wrote: the folder, the routes, the files. */
export function renderConversion(conv: IConversion): HTMLElement {
  return h(
    'div',
    `${CSS}-conversion`,
    h(
      'p',
      null,
      'Service written to ',
      h('code', null, `${conv.out_dir_path}/`)
    ),
    conv.routes.length > 0 &&
      h(
        'p',
        null,
        'Routes: ',
        ...conv.routes.map(r => h('code', null, `POST ${r} `))
      ),
    h(
      'ul',
      `${CSS}-files`,
      ...conv.files.map(f => h('li', null, h('code', null, f)))
    ),
    conv.dropped.length > 0 &&
      section(
        `Not promoted (${conv.dropped.length})`,
        'droppedSection',
        renderFindings(conv.dropped, 'dropped')
      )
  );
}

/** The default output folder: `<notebook stem>_service` next to the notebook. */
export function defaultOutDir(notebookPath: string): string {
  const slash = notebookPath.lastIndexOf('/');
  const dir = slash >= 0 ? notebookPath.slice(0, slash + 1) : '';
  const name = notebookPath.slice(slash + 1);
  const stem = name.replace(/\.ipynb$/i, '');
  return `${dir}${stem}_service`;
}

/** A run's state in words: "Queued (1 run ahead)", "Running cell 3 of 7", ... */
export function progressText(job: IJob): string {
  switch (job.state) {
    case 'queued': {
      const ahead = job.position ?? 0;
      return ahead > 0
        ? `Queued: ${ahead} run${ahead === 1 ? '' : 's'} ahead (the server runs a few kernels at once)`
        : 'Queued: waiting for a free kernel slot';
    }
    case 'running':
      if (job.total > 0) {
        // The count is papermill's, whose copy of the notebook has a few cells of its own:
        // a fraction, not a cell number.
        return job.done < job.total
          ? `Running the notebook: ${job.done} of ${job.total} cells done`
          : `All ${job.total} cells done; ${job.action === 'convert' ? 'writing and checking the service' : 'inferring the response schema'}…`;
      }
      return 'Starting the kernel…';
    case 'done':
      return 'Done';
    case 'failed':
      return 'Failed';
    case 'cancelled':
      return 'Cancelled';
  }
}

/** The progress of a run: its state in words and a bar of cells done. */
export function renderProgress(job: IJob): HTMLElement {
  const bar = h('progress', `${CSS}-progressBar`) as HTMLProgressElement;
  if (job.state === 'running' && job.total > 0) {
    bar.max = job.total;
    bar.value = job.done;
  } else {
    bar.removeAttribute('value'); // indeterminate while queued or starting
  }
  const node = h(
    'div',
    `${CSS}-progress`,
    h('p', `${CSS}-progressText`, progressText(job)),
    bar
  );
  node.dataset.state = job.state;
  node.dataset.done = String(job.done);
  node.dataset.total = String(job.total);
  return node;
}

/** Whether two JSON values are equal (objects compared key by key, in any order). */
export function sameJSON(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || !a || !b) {
    return false;
  }
  if (Array.isArray(a) !== Array.isArray(b)) {
    return false;
  }
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) {
    return false;
  }
  return ka.every(key =>
    sameJSON(
      (a as Record<string, unknown>)[key],
      (b as Record<string, unknown>)[key]
    )
  );
}

/** The example request: every field with the notebook's default value. */
export function exampleRequest(
  parameters: IParameter[]
): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const p of parameters) {
    if (!p.required) {
      body[p.name] = p.default;
    }
  }
  return body;
}

/**
 * "Try it": the request sent, the service's answer beside the notebook's own, whether they
 * match, and a link to the service's `/docs` (through the Jupyter server).
 */
export function renderTryResult(
  route: string,
  request: unknown,
  answer: unknown,
  notebookAnswer: unknown,
  docsUrl: string
): HTMLElement {
  const pretty = (value: unknown): HTMLElement =>
    h('pre', `${CSS}-json`, JSON.stringify(value, null, 2) ?? 'null');
  const same = sameJSON(answer, notebookAnswer);
  const docs = h(
    'a',
    `${CSS}-docsLink`,
    'Open the API docs (/docs)'
  ) as HTMLAnchorElement;
  docs.href = docsUrl;
  docs.target = '_blank';
  docs.rel = 'noopener';
  return h(
    'div',
    `${CSS}-try`,
    h(
      'p',
      `${CSS}-tryRequest`,
      h('code', null, `POST ${route}`),
      " with the notebook's default parameters:"
    ),
    pretty(request),
    h(
      'p',
      `${CSS}-verdict ${CSS}-verdict-${same ? 'same' : 'different'}`,
      same
        ? 'The service answers exactly what the notebook answered.'
        : 'The service answers differently from the notebook (a non-deterministic notebook?).'
    ),
    h(
      'div',
      `${CSS}-compare`,
      h(
        'div',
        `${CSS}-serviceAnswer`,
        h('h3', `${CSS}-sectionTitle`, 'Service answer'),
        pretty(answer)
      ),
      h(
        'div',
        `${CSS}-notebookAnswer`,
        h('h3', `${CSS}-sectionTitle`, "Notebook's answer"),
        pretty(notebookAnswer)
      )
    ),
    h('p', null, docs)
  );
}
