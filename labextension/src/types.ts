/**
 * The JSON the server extension answers (promoter/_jupyter.py), mirroring
 * `Inspection.to_dict()`, `Conversion.to_dict()` and `PromoterError.to_dict()`.
 */

/** Where in a notebook something is; every field may be unknown. */
export interface ILocation {
  notebook?: string | null;
  cell_index?: number | null;
  cell_id?: string | null;
  line?: number | null;
}

/**
 * A warning (`message`), or a line dropped from the service (`what` was dropped, and `why`).
 */
export interface IFinding extends ILocation {
  message?: string;
  what?: string;
  why?: string;
}

/** One cell and the role the service gives it. */
export interface ICellRole {
  index: number;
  id: string;
  role: string;
  source_preview: string;
}

/** One request field, from the `parameters` cell. */
export interface IParameter {
  name: string;
  type: string;
  default: unknown;
  description?: string | null;
  required: boolean;
}

/** A JSON schema, as far as the dialog reads it. */
export interface IJSONSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: { [name: string]: IJSONSchema };
  required?: string[];
  items?: IJSONSchema | IJSONSchema[];
  prefixItems?: IJSONSchema[];
  additionalProperties?: boolean | IJSONSchema;
  anyOf?: IJSONSchema[];
  oneOf?: IJSONSchema[];
  allOf?: IJSONSchema[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  $ref?: string;
  $defs?: { [name: string]: IJSONSchema };
  definitions?: { [name: string]: IJSONSchema };
  [key: string]: unknown;
}

/** `POST promoter/inspect`: what the service would look like. */
export interface IInspection {
  notebook: string;
  route: string;
  summary?: string | null;
  description?: string | null;
  cells: ICellRole[];
  parameters: IParameter[];
  request_schema?: IJSONSchema;
  response_schema?: IJSONSchema | null;
  response_type?: string | null;
  sample_response?: unknown;
  kernel_seconds?: number | null;
  warnings: IFinding[];
  dropped: IFinding[];
}

/** `POST promoter/convert`: what was written. */
export interface IConversion {
  out_dir: string;
  out_dir_path: string;
  readme: string | null;
  files: string[];
  routes: string[];
  warnings: IFinding[];
  dropped: IFinding[];
}

/** An error answer: `PromoterError.to_dict()` (or jupyter_server's own `{message}`). */
export interface IErrorReply extends ILocation {
  error?: string;
  message: string;
  hint?: string | null;
  paths?: string[];
}

/** `GET promoter/jobs/<id>`: one queued or running kernel run, or its result. */
export interface IJob<T = unknown> {
  id: string;
  action: 'inspect' | 'convert';
  notebook: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  done: number;
  total: number;
  /** Runs ahead of this one in the server's queue (only while queued). */
  position: number | null;
  /** The HTTP status the direct endpoint would answer, once finished. */
  status: number | null;
  /** The reply once finished: `T` when `state` is "done", an `IErrorReply` otherwise. */
  result: T | IErrorReply | null;
}

/** One cell's role from `POST promoter/roles`. */
export interface IRoleOfCell {
  index: number;
  id: string;
  role: string;
}

/** `POST promoter/roles`: the library's static inspection of the notebook as edited. */
export interface IRoles {
  /** `null` when the notebook breaks the contract (then `error` says where). */
  cells: IRoleOfCell[] | null;
  error: IErrorReply | null;
  warnings: IFinding[];
}

/** `POST promoter/services`: a generated service served through the Jupyter server. */
export interface IService {
  name: string;
  out_dir: string;
  /** Its root through the proxy (absolute path on the Jupyter server, ends with `/`). */
  url: string;
  docs: string;
}
