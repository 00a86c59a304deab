export class GatewayUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GatewayUnavailableError";
  }
}

export class KernelNotFoundError extends Error {
  constructor(kernelId: string) {
    super(`kernel ${kernelId} does not exist on the gateway`);
    this.name = "KernelNotFoundError";
  }
}

export class KernelDiedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KernelDiedError";
  }
}

export class InvalidKernelPathError extends Error {
  constructor(path: string) {
    super(`kernel path must be relative to the server root and must not contain "..": ${JSON.stringify(path)}`);
    this.name = "InvalidKernelPathError";
  }
}
