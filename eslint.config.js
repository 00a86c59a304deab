import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/**", "packages/db/src/generated/**", ".data/**", "coverage/**", "test-results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", Buffer: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      // Sanitising names and stripping ANSI codes match control characters on purpose.
      "no-control-regex": "off",
      "no-restricted-properties": ["error", { object: "process", property: "env", message: "Read configuration through the app's env module." }],
    },
  },
  {
    // packages/db is the only door to the database: nothing else imports Prisma or its generated client.
    ignores: ["packages/db/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["@prisma/*", "**/generated/client", "**/generated/enums", "**/generated/models", "**/db/src/**"], message: "Use the repository functions and types of @codeinterp/db." }] },
      ],
    },
  },
  {
    // The env modules and the start/test scripts are the only places allowed to read process.env.
    files: ["apps/*/src/env.ts", "packages/config/src/**", "scripts/**", "test/**", "prisma.config.ts", "vitest.config.ts", "bench/**"],
    rules: { "no-restricted-properties": "off" },
  },
);
