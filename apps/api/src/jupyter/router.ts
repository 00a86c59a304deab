import express, { Router } from "express";
import type { RequestHandler, Response } from "express";
import { z } from "zod";
import { findUserByApiKey } from "@codeinterp/db";
import type { ApiDeps } from "../deps";
import { HttpError } from "../errors";
import { parseInput } from "../validate";
import type { JupyterCaller } from "./auth";
import { identify, newToken, readCookies, SESSION_COOKIE, XSRF_COOKIE, xsrfOk } from "./auth";
import { kernelModel } from "./kernels";
import type { FacadeKernel } from "./kernels";
import { jupyterServicesFor } from "./services";

const BASE = "/jupyter";
const KERNEL_NAME = "python3";
/** The Jupyter Server version whose REST answers this subset follows. */
const SERVER_VERSION = "2.14.0";

const StartBody = z.object({ name: z.string().max(200).optional(), path: z.string().max(4096).optional() }).loose();
const LoginBody = z
  .object({
    _xsrf: z.string().max(512).optional(),
    password: z.string().max(512).optional(),
    next: z.string().max(2048).optional(),
  })
  .loose();

/**
 * The Jupyter Server REST subset Open WebUI's Jupyter engine and `@jupyterlab/services` use, mounted at
 * /jupyter. Auth: a codeinterp API key (`?token=`, `Authorization: token|Bearer`) or the /login form with
 * the key as password (then a session cookie, and X-XSRFToken on requests that change something).
 */
export function jupyterRouter(deps: ApiDeps): Router {
  const services = jupyterServicesFor(deps);
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: "16kb" });
  const json = express.json({ limit: "64kb", strict: true });

  router.get(["/", "/tree", "/lab"], (_req, res) => {
    res
      .type("html")
      .send(
        "<!doctype html><title>codeinterp</title><p>codeinterp serves the Jupyter kernel API here (no notebook UI).</p>",
      );
  });

  router.get("/login", (req, res) => {
    const xsrf = readCookies(req).get(XSRF_COOKIE) ?? newToken();
    setCookie(res, XSRF_COOKIE, xsrf, false);
    res.type("html").send(loginPage(xsrf, ""));
  });

  router.post("/login", form, async (req, res) => {
    const body = parseInput(LoginBody, req.body ?? {}, "body");
    if (!xsrfOk(req, body._xsrf))
      throw new HttpError(403, "xsrf_mismatch", "'_xsrf' argument missing or not matching the _xsrf cookie");
    const userId = body.password ? await findUserByApiKey(deps.db, body.password) : null;
    if (!userId) {
      res
        .status(401)
        .type("html")
        .send(loginPage(readCookies(req).get(XSRF_COOKIE) ?? "", "Invalid credentials"));
      return;
    }
    setCookie(res, SESSION_COOKIE, await services.sessions.create(userId), true);
    const next =
      body.next && /^\/jupyter\/[^/\\]/.test(body.next) && !body.next.includes("//") ? body.next : `${BASE}/`;
    res.redirect(302, next);
  });

  router.get("/api", (_req, res) => {
    res.json({ version: SERVER_VERSION });
  });

  const api = Router();
  api.use(authenticate(deps, services.sessions));
  api.get("/kernelspecs", (_req, res) => {
    res.json({ default: KERNEL_NAME, kernelspecs: { [KERNEL_NAME]: kernelspec() } });
  });
  api.get("/kernelspecs/:name", (req, res) => {
    if (req.params.name !== KERNEL_NAME) throw new HttpError(404, "not_found", "kernel spec not found");
    res.json(kernelspec());
  });
  api.get("/sessions", (_req, res) => {
    res.json([]);
  });
  api.get("/kernels", async (_req, res) => {
    res.json((await services.kernels.list(caller(res).userId)).map(kernelModel));
  });
  api.post("/kernels", json, async (req, res) => {
    const body = parseInput(StartBody, req.body ?? {}, "body");
    if (body.name && body.name !== KERNEL_NAME)
      throw new HttpError(404, "not_found", `no such kernel spec: ${body.name.slice(0, 100)}`);
    const k = await services.kernels.create(caller(res).userId);
    deps.log.info({ kernelId: k.id, messageId: k.messageId }, "jupyter kernel started");
    res.status(201).location(`${BASE}/api/kernels/${k.id}`).json(kernelModel(k));
  });
  api.get("/kernels/:id", async (req, res) => {
    res.json(kernelModel(await ownKernel(res, String(req.params.id))));
  });
  api.delete("/kernels/:id", async (req, res) => {
    await services.shutdown(await ownKernel(res, String(req.params.id)));
    res.status(204).end();
  });
  api.post("/kernels/:id/interrupt", async (req, res) => {
    await services.interrupt(await ownKernel(res, String(req.params.id)));
    res.status(204).end();
  });
  api.post("/kernels/:id/restart", async (req, res) => {
    const k = await ownKernel(res, String(req.params.id));
    await services.restart(k);
    res.json(kernelModel({ ...k, running: null }));
  });
  router.use("/api", api);
  return router;

  async function ownKernel(res: Response, id: string): Promise<FacadeKernel> {
    const k = await services.kernels.get(caller(res).userId, id);
    if (!k) throw new HttpError(404, "not_found", "kernel not found");
    return k;
  }
}

function authenticate(deps: ApiDeps, sessions: Parameters<typeof identify>[2]): RequestHandler {
  return async (req, res, next) => {
    const who = await identify(req, deps.db, sessions);
    if (!who)
      throw new HttpError(
        401,
        "unauthorized",
        "send a codeinterp API key as ?token=, Authorization: token <key>, or log in at /jupyter/login",
      );
    if (who.via === "cookie" && !["GET", "HEAD", "OPTIONS"].includes(req.method) && !xsrfOk(req)) {
      throw new HttpError(
        403,
        "xsrf_mismatch",
        "'_xsrf' argument missing from POST: send X-XSRFToken with the _xsrf cookie's value",
      );
    }
    res.locals.jupyterCaller = who;
    next();
  };
}

function caller(res: Response): JupyterCaller {
  const who = res.locals.jupyterCaller as JupyterCaller | undefined;
  if (!who) throw new HttpError(401, "unauthorized", "not authenticated");
  return who;
}

function kernelspec() {
  return {
    name: KERNEL_NAME,
    spec: {
      argv: [],
      display_name: "Python 3 (codeinterp)",
      language: "python",
      interrupt_mode: "message",
      env: {},
      metadata: {},
    },
    resources: {},
  };
}

function setCookie(res: Response, name: string, value: string, httpOnly: boolean): void {
  res.cookie(name, value, { path: BASE, httpOnly, sameSite: "strict" });
}

function loginPage(xsrf: string, message: string): string {
  const note = message ? `<p>${message}</p>` : "";
  return `<!doctype html><title>codeinterp login</title>${note}<form method="post" action="${BASE}/login"><input type="hidden" name="_xsrf" value="${xsrf}"><label>API key <input type="password" name="password"></label><button>Log in</button></form>`;
}
