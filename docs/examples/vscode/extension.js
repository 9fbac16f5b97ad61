// A minimal VS Code extension that starts `runbook lsp` for .rhai files (see docs/editors.md).
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("runbook").get("path", "runbook");
  client = new LanguageClient(
    "runbook",
    "runbook",
    { command, args: ["lsp"] },
    {
      documentSelector: [{ scheme: "file", language: "rhai" }],
      synchronize: {
        // Tell the server when modules, runbook.toml or an inventory change on disk.
        fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{rhai,toml}"),
      },
    }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
