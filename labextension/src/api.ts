/**
 * Calls to the server extension (promoter/_jupyter.py). `ServerConnection.makeRequest` adds
 * the token and the XSRF header, like every JupyterLab request.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  IConversion,
  IErrorReply,
  IInspection,
  IJob,
  IRoles,
  IService
} from './types';

/** A request the server answered with an error; `reply` is its JSON body. */
export class PromoterRequestError extends Error {
  constructor(
    readonly status: number,
    readonly reply: IErrorReply
  ) {
    super(reply.message);
    this.name = 'PromoterRequestError';
  }
}

/** A request to `url` (absolute on the Jupyter server); the decoded JSON answer. */
export async function requestJSON<T>(
  url: string,
  method: string,
  body: unknown,
  settings: ServerConnection.ISettings
): Promise<T> {
  let response: Response;
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // A proxy's HTML error page: keep the status line as the message.
  }
  if (!response.ok) {
    const reply =
      data && typeof data === 'object' && 'message' in data
        ? (data as IErrorReply)
        : { message: `${response.status} ${response.statusText}`.trim() };
    throw new PromoterRequestError(response.status, reply);
  }
  return data as T;
}

function endpoint(settings: ServerConnection.ISettings, ...parts: string[]) {
  return URLExt.join(settings.baseUrl, 'promoter', ...parts);
}

async function post<T>(
  path: string,
  body: Record<string, unknown>,
  settings: ServerConnection.ISettings
): Promise<T> {
  return requestJSON<T>(endpoint(settings, path), 'POST', body, settings);
}

/** `POST promoter/inspect`: run the notebook once and describe the service it would become. */
export function inspectNotebook(
  path: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IInspection> {
  return post<IInspection>('inspect', { path }, settings);
}

/** `POST promoter/convert`: write the service into `outDir` (relative to the root). */
export function convertNotebook(
  path: string,
  outDir: string,
  force = false,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IConversion> {
  return post<IConversion>(
    'convert',
    { path, out_dir: outDir, force },
    settings
  );
}

/** `POST promoter/jobs`: queue an inspect or convert run; answers at once. */
export function startJob(
  body:
    | { action: 'inspect'; path: string }
    | { action: 'convert'; path: string; out_dir: string; force: boolean },
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IJob> {
  return post<IJob>('jobs', body, settings);
}

/** `GET promoter/jobs/<id>`: the run's state and progress. */
export function getJob(
  id: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IJob> {
  return requestJSON<IJob>(
    endpoint(settings, 'jobs', id),
    'GET',
    undefined,
    settings
  );
}

/** `DELETE promoter/jobs/<id>`: stop the run and its kernel. */
export function cancelJob(
  id: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IJob> {
  return requestJSON<IJob>(
    endpoint(settings, 'jobs', id),
    'DELETE',
    undefined,
    settings
  );
}

/** `POST promoter/roles`: each cell's role, for the notebook as the browser holds it. */
export function fetchRoles(
  path: string,
  content: unknown,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IRoles> {
  return post<IRoles>('roles', { path, content }, settings);
}

/** `POST promoter/services`: serve the generated service in `outDir` ("Try it"). */
export function startService(
  outDir: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IService> {
  return post<IService>('services', { out_dir: outDir }, settings);
}

/** `DELETE promoter/services/<name>`: stop it. */
export function stopService(
  name: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<unknown> {
  return requestJSON(
    endpoint(settings, 'services', name),
    'DELETE',
    undefined,
    settings
  );
}

/** POST `body` to `route` of a running service, through the Jupyter server's proxy. */
export function callService(
  service: IService,
  route: string,
  body: unknown,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<unknown> {
  const url = URLExt.join(
    settings.baseUrl,
    service.url,
    route.replace(/^\//, '')
  );
  return requestJSON(url, 'POST', body, settings);
}
