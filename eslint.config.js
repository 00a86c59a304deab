import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/**", "packages/db/src/generated/**", ".data/**", "coverage/**", "test-results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        Buffer: "readonly",
      },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      // Sanitising names and stripping ANSI codes match control characters on purpose.
      "no-control-regex": "off",
      "no-restricted-properties": [
        "error",
        { object: "process", property: "env", message: "Read configuration through the app's env module." },
      ],
    },
  },
  {
    // packages/db is the only door to the database: nothing else imports Prisma or its generated client.
    ignores: ["packages/db/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["@prisma/*", "**/generated/client", "**/generated/enums", "**/generated/models", "**/db/src/**"],
              message: "Use the repository functions and types of @codeinterp/db.",
            },
          ],
        },
      ],
    },
  },
  {
    // Type-aware rules for TypeScript (each file checked with its nearest tsconfig.json): promises that are
    // neither awaited nor deliberately voided, promises passed where a callback's result is ignored, switches
    // that miss a case of a union, and throws of non-Errors.
    files: ["**/*.ts"],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/only-throw-error": "error",
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
    },
  },
  {
    // Production code gets the whole type-checked set. Tests and the bench read JSON bodies typed `any` (the
    // test client's), which the no-unsafe-* rules would flag hundreds of times, so they keep the set above.
    files: ["apps/*/src/**/*.ts", "packages/*/src/**/*.ts"],
    extends: [tseslint.configs.recommendedTypeChecked],
    rules: {
      // Not yet clean (findings when enabled: 8, 4, 4); each needs a look of its own.
      "@typescript-eslint/no-base-to-string": "off",
      "@typescript-eslint/prefer-promise-reject-errors": "off",
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    // The env modules and the start/test scripts are the only places allowed to read process.env.
    files: [
      "apps/*/src/env.ts",
      "packages/config/src/**",
      "scripts/**",
      "test/**",
      "prisma.config.ts",
      "vitest.config.ts",
      "bench/**",
    ],
    rules: { "no-restricted-properties": "off" },
  },
);
