/**
 * Calls to the server extension (promoter/_jupyter.py). `ServerConnection.makeRequest` adds
 * the token and the XSRF header, like every JupyterLab request.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IConversion, IErrorReply, IInspection } from './types';

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

async function post<T>(
  endpoint: string,
  body: Record<string, unknown>,
  settings: ServerConnection.ISettings
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'promoter', endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { method: 'POST', body: JSON.stringify(body) },
      settings
    );
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
