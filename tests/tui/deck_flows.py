"""Flow sources the deck tests run."""

HELLO = """
id: hello
namespace: team.alpha
description: says hello
inputs:
  - id: name
    type: STRING
    defaults: world
  - id: loud
    type: BOOLEAN
    defaults: false
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}"
"""

SLOW = """
id: slow
namespace: team.beta
tasks:
  - id: wait
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo started", "sleep 30"]
"""

FAIL = """
id: broken
namespace: team.alpha
tasks:
  - id: step
    type: io.kestra.plugin.core.log.Log
    message: "about to fail"
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "it broke"
"""

APPROVAL = """
id: gate
namespace: team.alpha
inputs:
  - id: release
    type: STRING
    defaults: "1.2.3"
tasks:
  - id: review
    type: flowdeck.approval.Request
    title: "Ship {{ inputs.release }}?"
    description: two services change
    displayFields: [service, risk]
    allowBulkApproval: true
    rows:
      - {service: api, risk: low, hidden: x}
      - {service: web, risk: high, hidden: y}
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "approved"
"""

COMMENTED = """
id: strict-gate
namespace: team.beta
tasks:
  - id: review
    type: flowdeck.approval.Request
    title: "Strict review"
    requireComment: true
    rows: [{service: db}]
"""
