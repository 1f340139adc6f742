// Renders a Plan for `stagefarm plan`: text for people, JSON for programs
// ({"stages": [{index, name, base, depends_on, needed}], "schedule": [[...]]}),
// and Graphviz dot. Pure; thread-safe.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_PLAN_FORMAT_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_PLAN_FORMAT_H_

#include <string>

#include "frontend/dockerfile/plan.h"

namespace stagefarm::dockerfile {

std::string PlanAsText(const Plan& plan);
std::string PlanAsJson(const Plan& plan);
std::string PlanAsDot(const Plan& plan);

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_PLAN_FORMAT_H_
