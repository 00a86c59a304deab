import { HttpError } from "../errors";

export type Language = "py" | "bash";

/** The official server's names for the languages we run (`service/src/config.ts`); others are refused like it does. */
export function resolveLanguage(lang: string): Language {
  switch (lang.toLowerCase()) {
    case "py":
    case "python":
      return "py";
    case "bash":
    case "sh":
      return "bash";
    default:
      throw new HttpError(400, "unsupported_language", `Unsupported language: ${lang}`);
  }
}

/**
 * The code the kernel runs. Bash runs as a child of the kernel, so it gets the kernel's sandbox, workspace
 * (its working directory is /mnt/data) and deadline (an interrupt ends `subprocess.run`, which kills the
 * child); its stdout and stderr come back as the process wrote them. The script travels as a JSON string
 * literal, which Python reads as the same string, so nothing in it is interpreted by Python.
 */
export function kernelCode(lang: Language, code: string): string {
  if (lang === "py") return code;
  return [
    "import subprocess as _ci_sp, sys as _ci_sys",
    `_ci_p = _ci_sp.run(["bash", "-c", ${JSON.stringify(code)}], stdin=_ci_sp.DEVNULL, stdout=_ci_sp.PIPE, stderr=_ci_sp.PIPE)`,
    '_ci_sys.stdout.write(_ci_p.stdout.decode("utf-8", "replace")); _ci_sys.stdout.flush()',
    '_ci_sys.stderr.write(_ci_p.stderr.decode("utf-8", "replace")); _ci_sys.stderr.flush()',
    "del _ci_sp, _ci_sys, _ci_p",
  ].join("\n");
}
