import type { OpenAPIRegistry } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";
import { ErrorBody } from "../schemas";

const json = (schema: z.ZodType, description: string) => ({ description, content: { "application/json": { schema } } });
const errors = {
  401: json(ErrorBody, "No or a wrong API key (or login session)"),
  404: json(ErrorBody, "No such kernel, or another user's"),
};

export const JupyterKernel = z
  .object({
    id: z.string(),
    name: z.literal("python3"),
    last_activity: z.string(),
    execution_state: z.enum(["idle", "busy"]),
    connections: z.number().int(),
  })
  .meta({ id: "JupyterKernel" });
const KernelParams = z.object({ id: z.string() });
const StartKernel = z.object({ name: z.literal("python3").optional(), path: z.string().optional() }).loose();

/** The Jupyter Server REST subset at /jupyter (see apps/api/src/jupyter/router.ts); the websocket is described in words. */
export function registerJupyterPaths(registry: OpenAPIRegistry): void {
  const jupyterToken = registry.registerComponent("securitySchemes", "jupyterToken", {
    type: "apiKey",
    in: "query",
    name: "token",
    description:
      "A codeinterp API key; also accepted as `Authorization: token <key>` or `Bearer <key>`, or the /jupyter/login session cookie with X-XSRFToken.",
  });
  const security = [{ [jupyterToken.name]: [] }];
  const tags = ["Jupyter"];
  registry.registerPath({
    method: "get",
    path: "/jupyter/api",
    tags,
    summary: "Jupyter Server version",
    responses: { 200: json(z.object({ version: z.string() }), "Version") },
  });
  registry.registerPath({
    method: "get",
    path: "/jupyter/api/kernelspecs",
    tags,
    summary: "The one kernel spec, python3 (the default)",
    security,
    responses: {
      200: json(z.object({ default: z.string(), kernelspecs: z.record(z.string(), z.unknown()) }), "Kernel specs"),
      401: errors[401],
    },
  });
  registry.registerPath({
    method: "get",
    path: "/jupyter/api/kernels",
    tags,
    summary: "The caller's kernels",
    security,
    responses: { 200: json(z.array(JupyterKernel), "Kernels"), 401: errors[401] },
  });
  registry.registerPath({
    method: "post",
    path: "/jupyter/api/kernels",
    tags,
    summary:
      "Start a kernel: a new message of the caller, with its own /mnt/data, whose first execution takes a pooled kernel",
    security,
    request: { body: { required: false, content: { "application/json": { schema: StartKernel } } } },
    responses: { 201: json(JupyterKernel, "Started"), ...errors },
  });
  registry.registerPath({
    method: "get",
    path: "/jupyter/api/kernels/{id}",
    tags,
    summary: "A kernel",
    security,
    request: { params: KernelParams },
    responses: { 200: json(JupyterKernel, "The kernel"), ...errors },
  });
  registry.registerPath({
    method: "delete",
    path: "/jupyter/api/kernels/{id}",
    tags,
    summary: "Shut a kernel down (its running execution is cancelled; the message's kernel is culled when idle)",
    security,
    request: { params: KernelParams },
    responses: { 204: { description: "Gone" }, ...errors },
  });
  registry.registerPath({
    method: "post",
    path: "/jupyter/api/kernels/{id}/interrupt",
    tags,
    summary: "Interrupt: cancels the running execution (the worker interrupts the kernel)",
    security,
    request: { params: KernelParams },
    responses: { 204: { description: "Interrupted" }, ...errors },
  });
  registry.registerPath({
    method: "post",
    path: "/jupyter/api/kernels/{id}/restart",
    tags,
    summary: "Restart: the next execution starts on a fresh kernel (variables gone, /mnt/data kept)",
    security,
    request: { params: KernelParams },
    responses: { 200: json(JupyterKernel, "Restarted"), ...errors },
  });
  registry.registerPath({
    method: "get",
    path: "/jupyter/api/kernels/{id}/channels",
    tags,
    summary:
      "Kernel websocket (Jupyter messaging 5.3; JSON frames, or the v1.kernel.websocket.jupyter.org subprotocol)",
    description:
      "Each execute_request becomes an execution of the kernel's message through the normal queue: status busy, execute_input, " +
      "stream / display_data / execute_result / error, a stream listing the files written (JUPYTER_FILE_LINKS), execute_reply, " +
      "status idle. kernel_info, complete, inspect, history, is_complete and comm_info requests get well-formed replies; other " +
      "requests an error reply. Malformed frames close the socket with 1007, frames over JUPYTER_MAX_MESSAGE_BYTES with 1009.",
    security,
    request: { params: KernelParams },
    responses: { 101: { description: "Switching protocols" }, ...errors },
  });
  registry.registerPath({
    method: "post",
    path: "/jupyter/login",
    tags,
    summary: "Password login as Jupyter Server does it (the API key is the password; `_xsrf` from GET /jupyter/login)",
    request: {
      body: {
        content: {
          "application/x-www-form-urlencoded": {
            schema: z.object({ _xsrf: z.string(), password: z.string(), next: z.string().optional() }),
          },
        },
      },
    },
    responses: {
      302: { description: "Logged in: session cookie set" },
      401: { description: "Wrong key" },
      403: json(ErrorBody, "Missing or mismatched _xsrf"),
    },
  });
}
