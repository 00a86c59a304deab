export class JupyterNotInstalledError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JupyterNotInstalledError";
  }
}

export class JupyterStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JupyterStartError";
  }
}
