"""A rule whose output is a directory (a tree artifact)."""

def _tree_impl(ctx):
    d = ctx.actions.declare_directory(ctx.label.name)
    ctx.actions.run_shell(
        outputs = [d],
        command = "mkdir -p $1/sub && echo a > $1/a.txt && echo b-content > $1/sub/b.txt && ln -s a.txt $1/link",
        arguments = [d.path],
    )
    return [DefaultInfo(files = depset([d]))]

tree = rule(implementation = _tree_impl)
